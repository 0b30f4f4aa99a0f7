import { describe, expect, it } from 'vitest';
import { apiError, createNamespace, kube, pod, uniqueName } from './harness/kube.js';

// The harness itself: a real API server with the admission chain the other cases rely on. Each
// assertion here is what makes a sidekey case meaningful (e.g. PodSecurity really enforcing).
describe('e2e harness: real kube-apiserver', () => {
  const k = kube();

  it('stores pods (Pending: no kubelet) with the ServiceAccount admission token volume', async () => {
    const ns = await createNamespace(k, uniqueName('harness'));
    const created = await k.core.createNamespacedPod({ namespace: ns, body: pod('plain') });
    expect(created.metadata?.uid).toBeTruthy();
    const stored = await k.core.readNamespacedPod({ name: 'plain', namespace: ns });
    expect(stored.status?.phase).toBe('Pending');
    const projected = (stored.spec?.volumes ?? []).find((v) => v.name.startsWith('kube-api-access-'));
    expect(projected?.projected?.sources?.some((s) => s.serviceAccountToken)).toBe(true);
  });

  it('enforces Pod Security: a privileged pod is rejected in a restricted namespace', async () => {
    const ns = await createNamespace(k, uniqueName('harness-psa'), {
      'pod-security.kubernetes.io/enforce': 'restricted',
    });
    const bad = pod('privileged');
    const c = bad.spec?.containers[0];
    if (c) c.securityContext = { privileged: true };
    const err = await apiError(() => k.core.createNamespacedPod({ namespace: ns, body: bad }));
    expect(err.code, err.message).toBe(403);
    expect(err.message).toContain('violates PodSecurity "restricted:latest"');
    await k.core.createNamespacedPod({ namespace: ns, body: pod('compliant') });
  });

  it('issues pod-bound service-account tokens that TokenReview accepts for their audience only', async () => {
    const ns = await createNamespace(k, uniqueName('harness-token'));
    const p = await k.core.createNamespacedPod({ namespace: ns, body: pod('tok') });
    const tr = await k.core.createNamespacedServiceAccountToken({
      name: 'default',
      namespace: ns,
      body: {
        spec: {
          audiences: ['sidekey-test'],
          expirationSeconds: 600,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'tok', uid: p.metadata?.uid },
        },
      },
    });
    const token = tr.status?.token ?? '';
    const ok = await k.authn.createTokenReview({ body: { spec: { token, audiences: ['sidekey-test'] } } });
    expect(ok.status?.authenticated).toBe(true);
    expect(ok.status?.user?.username).toBe(`system:serviceaccount:${ns}:default`);
    expect(ok.status?.user?.extra?.['authentication.kubernetes.io/pod-name']).toEqual(['tok']);
    const wrong = await k.authn.createTokenReview({ body: { spec: { token, audiences: ['other'] } } });
    expect(wrong.status?.authenticated).toBeFalsy();
  });
});
