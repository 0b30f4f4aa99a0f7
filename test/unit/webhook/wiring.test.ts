import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { isSkError } from '../../../src/errors.js';
import { defineBackend } from '../../../src/providers/backend.js';
import { BACKENDS } from '../../../src/providers/builtin.js';
import type { Container, Pod } from '../../../webhook/k8s.js';
import { mutatePod } from '../../../webhook/pipeline.js';
import { testContext, testRegistry } from './helpers.js';

/**
 * The pod wiring seam with a backend that uses every part of it (the built-in ones use only tokens,
 * env, cluster info and settings): a token with its own lifetime, agent env, an extra volume.
 */
const cloud = defineBackend({
  name: 'testcloud',
  title: 'a test backend',
  validateRef: () => {},
  settings: z.object({ audience: z.string().optional(), tokenFile: z.string().optional() }).strict(),
  annotations: [],
  clusterDefaults: [],
  wirePod: ({ settings, tokenDir, namespace }) => ({
    tokens: [
      { path: 'testcloud-token', audience: settings.audience ?? 'api://test', expirationSeconds: 600 },
    ],
    env: [{ name: 'TESTCLOUD_NAMESPACE', value: namespace ?? '' }],
    volumes: [
      { name: 'sidekey-testcloud', mountPath: '/etc/testcloud', source: { configMap: { name: 'tc' } } },
    ],
    settings: { tokenFile: `${tokenDir}/testcloud-token` },
  }),
  load: async () => {
    throw new Error('not loaded by the webhook');
  },
});

function context() {
  const registry = testRegistry().register({
    name: 'testcloud',
    validateRef: () => {},
    create: () => {
      throw new Error('unused');
    },
  });
  return { ...testContext(), registry, backends: [...BACKENDS, cloud] };
}

function pod(annotations: Record<string, string>, volumes: unknown[] = []): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'shop', annotations: { 'sidekey.io/inject': 'true', ...annotations } },
    spec: { containers: [{ name: 'app', image: 'app:1' }], volumes: volumes as never },
  };
}

const input = (p: Pod) => ({ operation: 'CREATE', namespace: 'shop', pod: p });

describe('pod wiring from a descriptor', () => {
  it('projects its token with audience and lifetime, sets agent env, mounts its volume, fills its settings', () => {
    const out = mutatePod(input(pod({ 'sidekey.io/secret-db': 'testcloud:db' })), context());
    if (out.kind !== 'inject') throw new Error(`not injected: ${JSON.stringify(out)}`);
    const spec = out.pod.spec!;
    const token = spec.volumes!.find((v) => v.name === 'sidekey-token') as unknown as {
      projected: { sources: Array<Record<string, unknown>> };
    };
    expect(token.projected.sources).toEqual([
      { serviceAccountToken: { path: 'testcloud-token', expirationSeconds: 600, audience: 'api://test' } },
    ]);
    expect(spec.volumes).toContainEqual({ name: 'sidekey-testcloud', configMap: { name: 'tc' } });
    const agent = spec.initContainers!.find((c) => c.name === 'sidekey-agent') as Container;
    expect(agent.env).toContainEqual({ name: 'TESTCLOUD_NAMESPACE', value: 'shop' });
    expect(agent.volumeMounts).toContainEqual({
      name: 'sidekey-testcloud',
      mountPath: '/etc/testcloud',
      readOnly: true,
    });
    const agentSpec = JSON.parse(agent.env!.find((e) => e.name === 'SIDEKEY_SPEC')!.value as string);
    expect(agentSpec.backends).toEqual({
      testcloud: { tokenFile: '/var/run/secrets/sidekey.io/serviceaccount/testcloud-token' },
    });
    // the app container gets neither the token nor the backend's volume
    const app = spec.containers.find((c) => c.name === 'app')!;
    expect(JSON.stringify(app)).not.toContain('testcloud');
  });

  it('wires nothing for a backend no secret uses', () => {
    const out = mutatePod(input(pod({ 'sidekey.io/secret-db': 'file:/etc/x' })), context());
    if (out.kind !== 'inject') throw new Error('not injected');
    expect(JSON.stringify(out.pod)).not.toContain('testcloud');
  });

  it("refuses a pod that already has the backend's volume name", () => {
    const out = mutatePod(
      input(pod({ 'sidekey.io/secret-db': 'testcloud:db' }, [{ name: 'sidekey-testcloud', emptyDir: {} }])),
      context(),
    );
    expect(out.kind).toBe('invalid');
    if (out.kind === 'invalid') expect(out.error.code).toBe('SK_ERR_MANIFEST_INVALID');
  });

  it('a wiring-only annotation for a backend no secret uses is refused, naming the annotation', () => {
    const out = mutatePod(
      input(
        pod({
          'sidekey.io/secret-db': 'file:/etc/x',
          'sidekey.io/aws-role-arn': 'arn:aws:iam::123456789012:role/app',
        }),
      ),
      testContext(),
    );
    expect(out.kind).toBe('invalid');
    if (out.kind === 'invalid') {
      expect(isSkError(out.error) && out.error.where).toBe('sidekey.io/aws-role-arn');
      expect(out.error.message).toBe('sidekey.io/aws-role-arn: set, but no secret uses an aws: ref');
    }
  });
});
