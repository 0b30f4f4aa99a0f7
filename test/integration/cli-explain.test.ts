import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { CANARY, REPO_ROOT, runCli } from '../helpers/cli.ts';

/**
 * `sidekey explain -f` as a real process on a manifest set that covers every reason a pod is not
 * injected. What the API server checks before calling the webhook comes from the chart itself: its
 * MutatingWebhookConfiguration and its ConfigMap's webhook config, rendered by the real helm with a
 * namespace label selector, an object selector and an extra CEL matchCondition.
 */

const HELM = path.join(
  process.env.SIDEKEY_TOOLS ?? path.join(os.homedir(), '.cache', 'sidekey-tools'),
  'bin',
  'helm',
);

// biome-ignore lint/suspicious/noExplicitAny: tests walk arbitrary Kubernetes objects
type Json = Record<string, any>;

let dir: string;
let mwc: Json;
let configFile: string;

beforeAll(() => {
  if (!existsSync(HELM)) throw new Error(`${HELM} is missing: run scripts/tools/ensure.sh integration`);
  dir = mkdtempSync(path.join(os.tmpdir(), 'sk-explain-'));
  const values = path.join(dir, 'values.yaml');
  writeFileSync(
    values,
    YAML.stringify({
      webhook: {
        namespaceSelector: { matchLabels: { 'sidekey.io/enabled': 'true' } },
        objectSelector: { matchExpressions: [{ key: 'sidekey.io/skip', operator: 'DoesNotExist' }] },
        matchConditions: {
          extra: [
            {
              name: 'not-debug',
              expression: "!has(object.metadata.labels) || !('debug' in object.metadata.labels)",
            },
          ],
        },
      },
      backends: { vault: { addr: 'https://vault.vault.svc:8200', role: 'default' } },
    }),
  );
  const r = spawnSync(
    HELM,
    ['template', 'sk', path.join(REPO_ROOT, 'charts', 'sidekey'), '-n', 'sidekey-system', '-f', values],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  const objects = YAML.parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Json | null)
    .filter((o): o is Json => !!o?.kind);
  mwc = objects.find((o) => o.kind === 'MutatingWebhookConfiguration')!;
  const cm = objects.find((o) => o.kind === 'ConfigMap')!;
  const cfg = YAML.parse(cm.data['config.yaml']) as Json;
  cfg.excludedNamespaces = [...cfg.excludedNamespaces, 'ops'];
  configFile = path.join(dir, 'config.yaml');
  writeFileSync(configFile, YAML.stringify(cfg));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const optIn = {
  'sidekey.io/inject': 'true',
  'sidekey.io/secret-db': 'vault:database/creds/shop',
  'sidekey.io/format-db': 'json',
  'sidekey.io/vault-role': 'shop',
};
const spec = { containers: [{ name: 'app', image: 'shop/app:1', env: [{ name: 'X', value: CANARY }] }] };
const ns = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, labels },
});
const pod = (name: string, namespace: string, meta: Json = {}, extraSpec: Json = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace, annotations: optIn, ...meta },
  spec: { ...spec, ...extraSpec },
});

describe('sidekey explain -f', () => {
  it('names every reason a pod is not injected, and what an injected one fetches with which identity', async () => {
    const manifests = [
      ns('shop', { 'sidekey.io/enabled': 'true' }),
      ns('ops', { 'sidekey.io/enabled': 'true' }),
      ns('legacy'),
      mwc,
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'good', namespace: 'shop' },
        spec: {
          template: {
            metadata: { annotations: { ...optIn, 'sidekey.io/secret-api': 'aws:prod/shop/api#key' } },
            spec: { ...spec, serviceAccountName: 'shop' },
          },
        },
      },
      pod('yes', 'shop', { annotations: { ...optIn, 'sidekey.io/inject': 'yes' } }),
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'outside', namespace: 'shop', annotations: optIn },
        spec: { template: { metadata: { labels: { app: 'outside' } }, spec } },
      },
      pod('excluded', 'ops'),
      pod('unlabelled-ns', 'legacy'),
      pod('skip-label', 'shop', { labels: { 'sidekey.io/skip': 'true' } }),
      pod('debug', 'shop', { labels: { debug: 'on' } }),
      pod('existing', 'shop', {
        uid: '0d6a3f7e-1111-4c3b-9a52-5d1b7ad0c001',
        creationTimestamp: '2026-11-30T10:00:00Z',
      }),
      pod('windows', 'shop', {}, { nodeSelector: { 'kubernetes.io/os': 'windows' } }),
      pod('done', 'shop', { annotations: { ...optIn, 'sidekey.io/status': 'injected' } }),
      pod('bad', 'shop', { annotations: { ...optIn, 'sidekey.io/refresh-db': 'sometimes' } }),
    ];
    const file = path.join(dir, 'set.yaml');
    writeFileSync(file, manifests.map((m) => YAML.stringify(m)).join('---\n'));
    const r = await runCli(['explain', '-f', file, '--config', configFile, '--kube-version', '1.31']);
    expect(r.code, r.stderr).toBe(1);
    const blocks = new Map(
      r.stdout
        .trim()
        .split('\n\n')
        .map((b) => [b.split(' ')[0]!, b] as const),
    );
    const why = (k: string) => blocks.get(k) ?? `(no block for ${k} in:\n${r.stdout})`;

    const good = why('Deployment/good');
    expect(good).toMatch(/^Deployment\/good \(namespace shop\): injected, native sidecar$/m);
    expect(good).toContain('db: vault: (sidekey.io/secret-db) → /run/sidekey/db');
    expect(good).toContain('api: aws: (sidekey.io/secret-api) → /run/sidekey/api');
    expect(good).toMatch(
      /identity: vault: https:\/\/vault\.vault\.svc:8200, kubernetes auth at kubernetes, role "shop", service account "shop" token with audience "vault"$/m,
    );
    expect(good).toContain("aws: region (none), the SDK's default credential chain");
    expect(good).toContain('warning: sidekey.io/secret-api uses aws: but no AWS region is set');
    expect(good).not.toContain('prod/shop/api');

    expect(why('Pod/yes')).toContain('why: sidekey.io/inject is set, but not to "true"');
    expect(why('Deployment/outside')).toMatch(
      /why: annotation placement: sidekey\.io\/format-db, sidekey\.io\/inject, .* are on the Deployment's own metadata.*move them to spec\.template\.metadata\.annotations/,
    );
    expect(why('Deployment/outside')).not.toContain('not opted in');
    expect(why('Pod/excluded')).toContain('why: the namespace is excluded from injection');
    expect(why('Pod/unlabelled-ns')).toMatch(
      /why: namespaceSelector: namespace legacy does not match \(sidekey\.io\/enabled=true, kubernetes\.io\/metadata\.name notin/,
    );
    expect(why('Pod/skip-label')).toContain(
      "why: objectSelector: the pod's labels do not match (!sidekey.io/webhook, !sidekey.io/skip)",
    );
    expect(why('Pod/debug')).toContain('why: matchCondition not-debug is false');
    expect(why('Pod/existing')).toMatch(/why: UPDATE: this pod exists already/);
    expect(why('Pod/windows')).toContain('why: Windows pods are skipped');
    expect(why('Pod/done')).toContain('why: matchCondition sidekey-not-yet-injected is false');
    expect(why('Pod/done')).toContain('why: already injected (sidekey.io/status: injected)');
    expect(why('Pod/bad')).toMatch(
      /why: the webhook denies the pod: SK_ERR_DURATION_INVALID: sidekey\.io\/refresh-db: /,
    );
    for (const k of [
      'Pod/yes',
      'Pod/excluded',
      'Pod/unlabelled-ns',
      'Pod/skip-label',
      'Pod/debug',
      'Pod/existing',
      'Pod/windows',
      'Pod/done',
      'Pod/bad',
    ]) {
      expect(why(k), k).toMatch(/: NOT injected$/m);
    }
    expect(r.stdout + r.stderr).not.toContain(CANARY);
  });

  it('without the webhook configuration it says what it could not check; exit 0 when all are injected', async () => {
    const file = path.join(dir, 'one.yaml');
    writeFileSync(
      file,
      YAML.stringify(
        pod('solo', 'shop', {
          annotations: { 'sidekey.io/inject': 'true', 'sidekey.io/secret-db': 'vault:kv/db' },
        }),
      ),
    );
    const r = await runCli(['explain', '-f', file, '--kube-version', '1.28']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Pod\/solo \(namespace shop\): injected, init container \+ classic sidecar$/m);
    expect(r.stdout).toContain(
      "note: the webhook's namespaceSelector, objectSelector and matchConditions were not checked",
    );
    expect(r.stdout).toContain('warning: sidekey.io/secret-db uses vault: but no Vault address is set');
    expect(r.stdout).toContain('identity: vault: (no address), kubernetes auth at kubernetes, no role');
    const json = await runCli(['explain', '-f', file, '--json']);
    expect(JSON.parse(json.stdout)[0]).toMatchObject({ object: 'Pod/solo', injected: true, mode: 'native' });
  });

  it('a live target needs a kubeconfig: a clear error, exit 2', async () => {
    const r = await runCli(['explain', 'deployment/shop'], { env: { KUBECONFIG: path.join(dir, 'none') } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/SK_ERR_/);
    const bad = await runCli(['explain', 'service/x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/SK_ERR_CLI_USAGE: sidekey explain: "service\/x" is not <kind>\/<name>/);
  });
});
