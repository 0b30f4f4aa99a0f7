import { describe, expect, it } from 'vitest';
import type { Pod } from '../../../webhook/k8s.js';
import { shouldInject } from '../../../webhook/should-inject.js';

const cfg = { excluded: ['kube-system', 'kube-public', 'sidekey-system'] };
const pod = (annotations?: Record<string, string>, spec: Partial<NonNullable<Pod['spec']>> = {}): Pod => ({
  metadata: annotations ? { annotations } : {},
  spec: { containers: [{ name: 'app' }], ...spec },
});
const IN = { 'sidekey.io/inject': 'true' };

describe('shouldInject', () => {
  it.each([
    ['CREATE of an opted-in pod', 'CREATE', 'shop', pod(IN), { inject: true }],
    ['UPDATE', 'UPDATE', 'shop', pod(IN), { inject: false, reason: 'not-create' }],
    ['DELETE', 'DELETE', 'shop', pod(IN), { inject: false, reason: 'not-create' }],
    ['no annotations', 'CREATE', 'shop', pod(), { inject: false, reason: 'not-opted-in' }],
    [
      '"True" is not "true", and is flagged',
      'CREATE',
      'shop',
      pod({ 'sidekey.io/inject': 'True' }),
      { inject: false, reason: 'opt-in-value' },
    ],
    [
      '"yes" is flagged',
      'CREATE',
      'shop',
      pod({ 'sidekey.io/inject': ' yes' }),
      { inject: false, reason: 'opt-in-value' },
    ],
    [
      '"enabled" is flagged',
      'CREATE',
      'shop',
      pod({ 'sidekey.io/inject': 'Enabled' }),
      { inject: false, reason: 'opt-in-value' },
    ],
    [
      '"false"',
      'CREATE',
      'shop',
      pod({ 'sidekey.io/inject': 'false' }),
      { inject: false, reason: 'not-opted-in' },
    ],
    [
      'already injected',
      'CREATE',
      'shop',
      pod({ ...IN, 'sidekey.io/status': 'injected' }),
      { inject: false, reason: 'already-injected' },
    ],
    ['kube-system', 'CREATE', 'kube-system', pod(IN), { inject: false, reason: 'excluded-namespace' }],
    [
      "the webhook's own namespace",
      'CREATE',
      'sidekey-system',
      pod(IN),
      { inject: false, reason: 'excluded-namespace' },
    ],
    [
      'spec.os.name windows',
      'CREATE',
      'shop',
      pod(IN, { os: { name: 'windows' } }),
      { inject: false, reason: 'windows' },
    ],
    [
      'nodeSelector kubernetes.io/os windows',
      'CREATE',
      'shop',
      pod(IN, { nodeSelector: { 'kubernetes.io/os': 'windows' } }),
      { inject: false, reason: 'windows' },
    ],
    [
      'the deprecated beta.kubernetes.io/os label',
      'CREATE',
      'shop',
      pod(IN, { nodeSelector: { 'beta.kubernetes.io/os': 'windows' } }),
      { inject: false, reason: 'windows' },
    ],
    [
      'linux nodeSelector',
      'CREATE',
      'shop',
      pod(IN, { nodeSelector: { 'kubernetes.io/os': 'linux' } }),
      { inject: true },
    ],
  ] as const)('%s', (_name, operation, namespace, p, expected) => {
    expect(shouldInject({ operation, namespace, pod: p }, cfg)).toEqual(expected);
  });

  it('takes the namespace from the pod when the request has none', () => {
    const p: Pod = { metadata: { namespace: 'kube-public', annotations: IN }, spec: { containers: [] } };
    expect(shouldInject({ operation: 'CREATE', namespace: undefined, pod: p }, cfg)).toEqual({
      inject: false,
      reason: 'excluded-namespace',
    });
  });
});
