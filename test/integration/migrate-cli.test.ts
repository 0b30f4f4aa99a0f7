import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { CANARY, runCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/fixtures.ts';
import { emulatorKubeconfig, K8sApiEmulator } from './providers/k8s-api-emulator.ts';

/** `sidekey scan` and `sidekey migrate` as processes: exit codes, inputs, outputs, and no values. */

const FIX = path.resolve('test/fixtures/migrate');
const fx = (n: string) => path.join(FIX, n);

function noSecretsIn(...outs: string[]): void {
  for (const o of outs) expect(o).not.toMatch(/SKCANARY/i);
}

describe('sidekey scan (manifests)', () => {
  it('prints the table, exits 0 without --fail-on, and never a value', async () => {
    const r = await runCli(['scan', '-f', fx('literals.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      readFileSync(path.join(FIX, 'golden/literals.yaml.scan.txt'), 'utf8').replace(/^/, ''),
    );
    noSecretsIn(r.stdout, r.stderr);
  });

  it('--fail-on gates CI: exit 3 at or above the level, 0 below', async () => {
    const high = await runCli(['scan', '-f', fx('api.yaml'), '--fail-on', 'high']);
    expect(high.code).toBe(3);
    expect(high.stderr).toContain('--fail-on');
    const clean = await runCli(['scan', '-f', fx('already-migrated.yaml'), '--fail-on', 'low']);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout).toContain('already migrated: 2');
  });

  it('-o json from stdin', async () => {
    const r = await runCli(['scan', '-f', '-', '-o', 'json'], {
      input: readFileSync(fx('workloads.yaml'), 'utf8'),
    });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.summary.workloadsScanned).toBe(5);
    expect(j.findings[0].source).toBe('stdin#1');
  });

  it('a directory: every manifest in it, sorted', async () => {
    const d = tempDir({
      'b.yaml': readFileSync(fx('api.yaml'), 'utf8'),
      'a.json': readFileSync(fx('list.json'), 'utf8'),
    });
    const r = await runCli(['scan', '-f', d, '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const sources = JSON.parse(r.stdout).workloads.map((w: { source: string }) => path.basename(w.source));
    expect(sources).toEqual(['a.json#1[0]', 'b.yaml#2']);
    noSecretsIn(r.stdout);
    // An unparsable file in a directory (a Helm template) is skipped with a warning.
    writeFileSync(
      path.join(d, 'c.yaml'),
      'kind: Pod\nmetadata:\n  name: {{ .Values.name }\n  labels: [unclosed\n',
    );
    const r2 = await runCli(['scan', '-f', d, '-o', 'json']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(JSON.parse(r2.stdout).workloads).toHaveLength(2);
    expect(r2.stderr).toMatch(/^warn: SK_ERR_MANIFEST_INVALID: .*c\.yaml:\d+: .*; skipped$/m);
  });

  it('bad usage exits 2 with one SK_ERR line', async () => {
    for (const args of [
      ['scan', '-f', fx('api.yaml'), '-o', 'xml'],
      ['scan', '-f', fx('api.yaml'), '--fail-on', 'critical'],
      ['scan', '-f', path.join(FIX, 'nope.yaml')],
    ]) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^SK_ERR_CLI_USAGE: /);
    }
    const bad = tempDir({ 'bad.yaml': 'kind: Pod\nmetadata: [unclosed\n' });
    const r = await runCli(['scan', '-f', path.join(bad, 'bad.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^SK_ERR_MANIFEST_INVALID: .*bad\.yaml:\d+/);
  });
});

describe('sidekey scan (cluster, API emulator)', () => {
  const api = new K8sApiEmulator();
  let kubeconfig = '';
  beforeAll(async () => {
    api.tokens.set('admin-token', '*');
    const server = await api.listen();
    const [, deployment] = parseAllDocuments(readFileSync(fx('api.yaml'), 'utf8')).map((d) => d.toJS());
    const [pod] = parseAllDocuments(readFileSync(fx('literals.yaml'), 'utf8')).map((d) => d.toJS());
    api.workloads.set('deployments', [deployment]);
    // A Pod owned by a ReplicaSet is reported at its Deployment, not again.
    const owned = structuredClone(deployment.spec.template);
    owned.metadata = {
      name: 'payments-api-7d9f-x',
      namespace: 'payments',
      ownerReferences: [
        { kind: 'ReplicaSet', name: 'payments-api-7d9f', controller: true, apiVersion: 'apps/v1', uid: 'u' },
      ],
    };
    api.workloads.set('pods', [pod, owned]);
    kubeconfig = emulatorKubeconfig(server, 'payments');
  });
  afterAll(async () => {
    await api.close();
  });

  it('-A lists every workload kind once and finds the same as from manifests', async () => {
    const r = await runCli(['scan', '-A', '-o', 'json'], { env: { KUBECONFIG: kubeconfig } });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.workloads.map((w: { workload: string }) => w.workload)).toEqual([
      'Pod/debug-shell',
      'Deployment/payments-api',
    ]);
    expect(j.summary.findings).toBe(12);
    noSecretsIn(r.stdout, r.stderr);
  });

  it('migrate --cluster reads the key names of envFrom Secrets (never their values)', async () => {
    api.put('logging', 'elastic-credentials', { USER: 'shipper', PASSWORD: CANARY });
    const r = await runCli(['migrate', '-f', fx('workloads.yaml'), '--cluster'], {
      env: { KUBECONFIG: kubeconfig },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('sidekey.io/secret-es-password: k8s:elastic-credentials#PASSWORD');
    expect(r.stdout).toContain('sidekey.io/env-es-user: ES_USER');
    expect(r.stderr).not.toContain('its keys are unknown');
    noSecretsIn(r.stdout, r.stderr);
  });

  it('-n limits to one namespace (default: the context namespace)', async () => {
    const r = await runCli(['scan', '-o', 'json'], { env: { KUBECONFIG: kubeconfig } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).workloads.map((w: { workload: string }) => w.workload)).toEqual([
      'Deployment/payments-api',
    ]);
    const ops = await runCli(['scan', '-n', 'ops', '-o', 'json', '--fail-on', 'medium'], {
      env: { KUBECONFIG: kubeconfig },
    });
    expect(ops.code).toBe(3);
    expect(JSON.parse(ops.stdout).workloads).toHaveLength(1);
  });
});

describe('sidekey migrate', () => {
  it('stdout = golden output; notes and RBAC on stderr, without values', async () => {
    const r = await runCli(['migrate', '-f', fx('workloads.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(readFileSync(path.join(FIX, 'golden/workloads.yaml.migrated.yaml'), 'utf8'));
    expect(r.stderr).toContain('envFrom Secret elastic-credentials');
    expect(r.stderr).toContain('kind: RoleBinding');
  });

  it('--dry-run prints the golden diff and writes nothing; values never shown', async () => {
    const d = tempDir();
    const out = path.join(d, 'out.yaml');
    const r = await runCli(['migrate', '-f', fx('api.yaml'), '--dry-run', '--output-file', out]);
    expect(r.code, r.stderr).toBe(0);
    const golden = readFileSync(path.join(FIX, 'golden/api.yaml.dry-run.diff'), 'utf8');
    expect(r.stdout).toBe(
      golden.replaceAll('a/api.yaml', `a/${fx('api.yaml')}`).replaceAll('b/api.yaml', `b/${fx('api.yaml')}`),
    );
    expect(() => readFileSync(out)).toThrow();
    noSecretsIn(r.stdout, r.stderr);
  });

  it('literal secrets: reported with guidance, never printed, manifest untouched', async () => {
    const r = await runCli(['migrate', '-f', fx('literals.yaml'), '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('GITHUB_TOKEN in container shell');
    noSecretsIn(r.stdout, r.stderr);
  });

  it('--to maps to another backend; a bad mapping exits 2', async () => {
    const d = tempDir();
    const r = await runCli([
      'migrate',
      '-f',
      fx('workloads.yaml'),
      '--to',
      'aws:{namespace}/{secret}',
      '--output-file',
      path.join(d, 'o.yaml'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(path.join(d, 'o.yaml'), 'utf8')).toContain(
      'sidekey.io/secret-smtp-password: aws:reports/smtp#password',
    );
    expect(r.stderr).not.toContain('kind: Role');
    const bad = await runCli(['migrate', '-f', fx('workloads.yaml'), '--to', 'vault:x/{nope}']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^SK_ERR_CLI_USAGE: --to: unknown placeholder \{nope\}/);
  });
});
