import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import jsonpatch from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { CANARY, runCli } from '../helpers/cli.ts';

/**
 * `sidekey inject` as a real process (the built CLI): Pods and every workload kind, YAML and JSON,
 * multi-document, stdin; mutated objects or patches; unchanged objects with the reason on stderr;
 * exit 2 naming the annotation and the code on invalid annotations. A literal secret in an opted-in
 * pod's env (the canary) is removed by the injection and never printed.
 */

const annotations = {
  'sidekey.io/inject': 'true',
  'sidekey.io/secret-db': 'vault:secret/data/shop/db#password',
  'sidekey.io/env-db': 'DB_PASSWORD',
};
const podSpec = {
  containers: [{ name: 'app', image: 'shop/app:1', env: [{ name: 'DB_PASSWORD', value: CANARY }] }],
};
const template = { metadata: { labels: { app: 'shop' }, annotations }, spec: podSpec };

const workloads: Record<string, unknown>[] = [
  { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', annotations }, spec: podSpec },
  { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { template } },
  { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's' }, spec: { template } },
  { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'ds' }, spec: { template } },
  { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'rs' }, spec: { template } },
  { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j' }, spec: { template } },
  {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'cj' },
    spec: { schedule: '* * * * *', jobTemplate: { spec: { template } } },
  },
];
const plain = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'plain' },
  spec: { containers: [{ name: 'app', image: 'a' }] },
};
const service = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'svc' },
  spec: { ports: [{ port: 80 }] },
};

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sk-inject-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// biome-ignore lint/suspicious/noExplicitAny: tests read deep fields of arbitrary manifests
type Json = Record<string, any>;

function podOf(obj: Record<string, unknown>): Json {
  const spec = obj.spec as Json;
  if (obj.kind === 'Pod') return obj as Json;
  if (obj.kind === 'CronJob') return spec.jobTemplate.spec.template;
  return spec.template;
}

describe('sidekey inject', () => {
  it('mutates Pods and every workload kind from multi-document YAML; others unchanged with a reason', async () => {
    const file = path.join(dir, 'all.yaml');
    writeFileSync(file, [...workloads, plain, service].map((o) => YAML.stringify(o)).join('---\n'));
    const r = await runCli(['inject', '-f', file, '--kube-version', '1.30']);
    expect(r.code, r.stderr).toBe(0);
    const docs = YAML.parseAllDocuments(r.stdout).map((d) => d.toJS() as Record<string, unknown>);
    expect(docs.map((d) => d.kind)).toEqual([...workloads.map((w) => w.kind), 'Pod', 'Service']);
    for (const d of docs.slice(0, workloads.length)) {
      const pod = podOf(d);
      expect(pod.metadata.annotations['sidekey.io/status'], String(d.kind)).toBe('injected');
      expect(pod.spec.initContainers[0]).toMatchObject({ name: 'sidekey-agent', restartPolicy: 'Always' });
      expect(pod.spec.containers[0].env).toEqual([{ name: 'DB_PASSWORD_FILE', value: '/run/sidekey/db' }]);
    }
    expect(docs[workloads.length]).toEqual(plain);
    expect(docs[workloads.length + 1]).toEqual(service);
    expect(r.stderr).toContain('Pod/plain: unchanged: not opted in');
    expect(r.stderr).toContain('Service/svc: unchanged: kind Service has no pod template');
    expect(r.stdout + r.stderr).not.toContain(CANARY);
  });

  it('reads JSON from stdin and prints one patch per object that applies to it', async () => {
    const input = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [workloads[1], plain] });
    const r = await runCli(['inject', '-f', '-', '--patch'], { input });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    const patch = JSON.parse(lines[0]!);
    const applied = jsonpatch.applyPatch(structuredClone(workloads[1]), patch, true, false).newDocument;
    // No --kube-version: an unknown version means native sidecars, said once on stderr.
    expect(podOf(applied as Record<string, unknown>).spec.initContainers[0]).toMatchObject({
      name: 'sidekey-agent',
      restartPolicy: 'Always',
    });
    expect(r.stderr.match(/cluster version unknown/g)).toHaveLength(1);
    expect(JSON.parse(lines[1]!)).toEqual([]);
    expect(r.stdout).not.toContain(CANARY);
  });

  it('a Job: native sidecar by default; init-only with a warning on 1.28; a classic sidecar with the exit-file volume when asked', async () => {
    const job = (extra: Record<string, string> = {}) => ({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'report', namespace: 'batch' },
      spec: {
        template: {
          metadata: {
            annotations: {
              ...annotations,
              'sidekey.io/vault-addr': 'https://vault.example.test:8200',
              ...extra,
            },
          },
          spec: { ...podSpec, restartPolicy: 'Never', securityContext: { runAsUser: 1000, fsGroup: 1000 } },
        },
      },
    });
    const file = path.join(dir, 'job.yaml');
    writeFileSync(file, YAML.stringify(job()));
    const templ = (out: string) => podOf(YAML.parse(out) as Record<string, unknown>);

    const now = await runCli(['inject', '-f', file]);
    expect(now.code, now.stderr).toBe(0);
    expect(templ(now.stdout).spec.initContainers.map((c: Json) => [c.name, c.restartPolicy])).toEqual([
      ['sidekey-agent', 'Always'],
    ]);
    expect(now.stderr).not.toContain('warning');

    const old = await runCli(['inject', '-f', file, '--kube-version', '1.28']);
    expect(old.code, old.stderr).toBe(0);
    const oldPod = templ(old.stdout);
    expect(oldPod.spec.initContainers.map((c: Json) => c.name)).toEqual(['sidekey-init']);
    expect(oldPod.spec.containers.map((c: Json) => c.name)).toEqual(['app']);
    expect(old.stderr).toMatch(
      /^sidekey inject: Job\/report: warning: the pod runs to completion .* sidekey\.io\/exit-file/m,
    );
    expect(old.stderr).not.toContain('cluster version unknown');

    writeFileSync(file, YAML.stringify(job({ 'sidekey.io/exit-file': '/run/sidekey-exit/done' })));
    const exit = await runCli(['inject', '-f', file, '--kube-version', 'v1.28.4']);
    expect(exit.code, exit.stderr).toBe(0);
    const exitPod = templ(exit.stdout);
    expect(exitPod.spec.containers.map((c: Json) => c.name)).toEqual(['app', 'sidekey-agent']);
    expect(exitPod.spec.volumes).toContainEqual({
      name: 'sidekey-exit',
      emptyDir: { medium: 'Memory', sizeLimit: '1Mi' },
    });
    expect(exitPod.spec.containers[0].volumeMounts).toContainEqual({
      name: 'sidekey-exit',
      mountPath: '/run/sidekey-exit',
    });
    const spec = JSON.parse(exitPod.spec.containers[1].env[0].value);
    expect(spec.agent).toEqual({ exitFile: '/run/sidekey-exit/done' });
    expect(exit.stderr).not.toContain('warning');
    for (const r of [now, old, exit]) expect(r.stdout + r.stderr).not.toContain(CANARY);
  });

  it('warns about inject values that mean yes, annotations on the workload metadata, and backends with no address', async () => {
    const file = path.join(dir, 'mistakes.yaml');
    // Objects left unchanged are printed as they are: no canary in them.
    const spec = { containers: [{ name: 'app', image: 'shop/app:1' }] };
    const docs = [
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'yes', annotations: { ...annotations, 'sidekey.io/inject': 'yes' } },
        spec,
      },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'outside', annotations },
        spec: { template: { metadata: { labels: { app: 'x' } }, spec } },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'noaddr',
          annotations: { ...annotations, 'sidekey.io/secret-key': 'aws:prod/shop/api' },
        },
        spec,
      },
    ];
    writeFileSync(file, docs.map((d) => YAML.stringify(d)).join('---\n'));
    const r = await runCli(['inject', '-f', file, '--kube-version', '1.31']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Pod/yes: warning: sidekey.io/inject is set, but not to "true"');
    expect(r.stderr).toContain(
      "Deployment/outside: warning: sidekey.io/env-db, sidekey.io/inject, sidekey.io/secret-db are on the Deployment's own metadata",
    );
    expect(r.stderr).toContain('move them to spec.template.metadata.annotations');
    expect(r.stderr).toContain(
      'Pod/noaddr: warning: sidekey.io/secret-db uses vault: but no Vault address is set',
    );
    expect(r.stderr).toContain(
      'Pod/noaddr: warning: sidekey.io/secret-key uses aws: but no AWS region is set',
    );
    expect(r.stderr).not.toContain('prod/shop/api');
    expect(r.stdout + r.stderr).not.toContain(CANARY);
  });

  it('exits 2 with one line naming the annotation and the code, printing nothing else', async () => {
    const bad = {
      ...workloads[1],
      spec: {
        template: {
          ...template,
          metadata: { annotations: { ...annotations, 'sidekey.io/refresh-db': 'sometimes' } },
        },
      },
    };
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, `${YAML.stringify(plain)}---\n${YAML.stringify(bad)}`);
    const r = await runCli(['inject', '-f', file]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('SK_ERR_'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^SK_ERR_DURATION_INVALID: Deployment\/d: sidekey\.io\/refresh-db: /);
  });

  it('exits 2 on a --kube-version that is not a version (it would silently select classic sidecars)', async () => {
    const file = path.join(dir, 'pod.yaml');
    writeFileSync(file, YAML.stringify(workloads[0]));
    const r = await runCli(['inject', '-f', file, '--kube-version', '1.3O']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toBe(
      'SK_ERR_CLI_USAGE: --kube-version: "1.3O" is not a version such as 1.30 or v1.31.2',
    );
  });

  it('exits 2 on a file that is not YAML', async () => {
    const file = path.join(dir, 'broken.yaml');
    writeFileSync(file, 'kind: Pod\nmetadata: {name: [unclosed\n');
    const r = await runCli(['inject', '-f', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^SK_ERR_MANIFEST_INVALID: .*broken\.yaml/m);
  });
});
