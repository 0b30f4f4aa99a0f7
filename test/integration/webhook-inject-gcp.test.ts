import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { runCli } from '../helpers/cli.ts';

/**
 * `sidekey inject -f` (the built CLI) for gcp: refs: a GKE Deployment (Workload Identity through the
 * metadata server: nothing mounted) and a Deployment on another cluster (Workload Identity
 * Federation: a projected token with the pool provider's audience, the settings in SIDEKEY_SPEC), and
 * the bad inputs of the federation annotations, each one line naming the annotation.
 */

const PROVIDER =
  '//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/k8s-pool/providers/prod';
const SA = 'shop@shop-prod.iam.gserviceaccount.com';

function deployment(annotations: Record<string, string>): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'shop' },
    spec: {
      template: {
        metadata: {
          annotations: {
            'sidekey.io/inject': 'true',
            'sidekey.io/secret-db': 'gcp:db-credentials#password',
            'sidekey.io/gcp-project': 'shop-prod',
            ...annotations,
          },
        },
        spec: { serviceAccountName: 'shop', containers: [{ name: 'app', image: 'shop/app:1' }] },
      },
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: tests read deep fields of manifests
type Json = Record<string, any>;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sk-inject-gcp-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function inject(obj: Record<string, unknown>) {
  const file = path.join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, YAML.stringify(obj));
  return runCli(['inject', '-f', file, '--kube-version', '1.30']);
}

function agentOf(out: string): { pod: Json; agent: Json; spec: Json } {
  const pod = (YAML.parse(out) as Json).spec.template;
  const agent = (pod.spec.initContainers as Json[]).find((c) => c.name === 'sidekey-agent')!;
  const spec = JSON.parse((agent.env as Json[]).find((e) => e.name === 'SIDEKEY_SPEC')!.value) as Json;
  return { pod, agent, spec };
}

describe('sidekey inject -f with gcp: refs', () => {
  it('GKE (metadata server): the project in the spec, no token volume', async () => {
    const r = await inject(deployment({}));
    expect(r.code, r.stderr).toBe(0);
    const { pod, spec } = agentOf(r.stdout);
    expect(spec.backends.gcp).toEqual({ project: 'shop-prod' });
    const volumes = (pod.spec.volumes as Json[]).map((v) => v.name);
    expect(volumes).not.toContain('sidekey-token');
  });

  it('federation: a projected token with audience https: + the pool provider, settings in the spec', async () => {
    const r = await inject(
      deployment({ 'sidekey.io/gcp-audience': PROVIDER, 'sidekey.io/gcp-service-account': SA }),
    );
    expect(r.code, r.stderr).toBe(0);
    const { pod, agent, spec } = agentOf(r.stdout);
    const token = (pod.spec.volumes as Json[]).find((v) => v.name === 'sidekey-token')!;
    expect(token.projected.sources).toContainEqual({
      serviceAccountToken: { path: 'gcp-token', expirationSeconds: 3600, audience: `https:${PROVIDER}` },
    });
    expect(spec.backends.gcp).toEqual({
      project: 'shop-prod',
      audience: PROVIDER,
      serviceAccount: SA,
      tokenFile: '/var/run/secrets/sidekey.io/serviceaccount/gcp-token',
    });
    expect(agent.volumeMounts).toContainEqual({
      name: 'sidekey-token',
      mountPath: '/var/run/secrets/sidekey.io/serviceaccount',
      readOnly: true,
    });
  });

  it('bad input: federation without an audience, an audience that is not a pool provider, a bad service account', async () => {
    for (const [annotations, key] of [
      [{ 'sidekey.io/gcp-auth': 'federation' }, 'sidekey.io/gcp-audience'],
      [{ 'sidekey.io/gcp-audience': 'https://example.com' }, 'sidekey.io/gcp-audience'],
      [{ 'sidekey.io/gcp-service-account': 'not an email' }, 'sidekey.io/gcp-service-account'],
    ] as const) {
      const r = await inject(deployment(annotations));
      expect(r.code, r.stdout).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^SK_ERR_ANNOTATION_INVALID: /);
      expect(lines[0]).toContain(key);
    }
  });
});
