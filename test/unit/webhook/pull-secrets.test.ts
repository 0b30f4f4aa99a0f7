import { describe, expect, it } from 'vitest';
import type { Pod } from '../../../webhook/k8s.js';
import { mutatePod } from '../../../webhook/pipeline.js';
import { testContext } from './helpers.js';

/** `agent.imagePullSecrets` of the webhook config: the agent image from a private registry. */
function pod(pullSecrets?: { name: string }[]): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'p',
      namespace: 'shop',
      annotations: { 'sidekey.io/inject': 'true', 'sidekey.io/secret-db': 'file:/etc/db' },
    },
    spec: {
      containers: [{ name: 'app', image: 'app:1' }],
      ...(pullSecrets ? { imagePullSecrets: pullSecrets } : {}),
    },
  };
}

function injected(p: Pod, secrets: string[]): Pod {
  const out = mutatePod(
    { operation: 'CREATE', namespace: 'shop', pod: p },
    testContext({ agent: { imagePullSecrets: secrets } }),
  );
  if (out.kind !== 'inject') throw new Error(`not injected: ${JSON.stringify(out)}`);
  return out.pod;
}

describe('agent image pull secrets', () => {
  it('adds the configured secrets to a pod that has none', () => {
    expect(injected(pod(), ['registry-a', 'registry-b']).spec!.imagePullSecrets).toEqual([
      { name: 'registry-a' },
      { name: 'registry-b' },
    ]);
  });

  it("keeps the pod's own secrets first and lists each name once", () => {
    const out = injected(pod([{ name: 'app-registry' }, { name: 'registry-a' }]), [
      'registry-a',
      'registry-b',
    ]);
    expect(out.spec!.imagePullSecrets).toEqual([
      { name: 'app-registry' },
      { name: 'registry-a' },
      { name: 'registry-b' },
    ]);
  });

  it('leaves imagePullSecrets alone when none are configured (the default)', () => {
    expect(injected(pod(), []).spec!.imagePullSecrets).toBeUndefined();
    const own = [{ name: 'app-registry' }];
    expect(injected(pod(own), []).spec!.imagePullSecrets).toEqual(own);
  });
});
