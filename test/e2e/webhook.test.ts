import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { apiError, createNamespace, kube, pod, rawRequest, uniqueName } from './harness/kube.js';
import { installSidekey, type SidekeyInstall } from './harness/sidekey.js';

// The API server calls the real `sidekey webhook` (installed from the chart's `helm template`
// output, url mode) over TLS, applies its JSON patch, runs the rest of admission (Pod Security
// included) and stores the result.

const CANARY_REF = 'k8s:app-db#password';

function optIn(extra: Record<string, string> = {}): Record<string, string> {
  return { 'sidekey.io/inject': 'true', 'sidekey.io/secret-db-password': CANARY_REF, ...extra };
}

function sidekeyContainers(p: V1Pod): V1Container[] {
  return [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].filter((c) =>
    (c.env ?? []).some((e) => e.name === 'SIDEKEY_SPEC'),
  );
}

describe('webhook against a real kube-apiserver', () => {
  const k = kube();
  let sk: SidekeyInstall;
  let ns: string;

  beforeAll(async () => {
    sk = await installSidekey(k, { release: 'sidekey' });
    ns = await createNamespace(k, uniqueName('apps'));
  });
  afterAll(async () => {
    await sk?.uninstall();
  });

  it('mutates an opted-in pod and the API server stores the injected pod (native sidecar)', async () => {
    await k.core.createNamespacedPod({ namespace: ns, body: pod('opted-in', optIn()) });
    const stored = await k.core.readNamespacedPod({ name: 'opted-in', namespace: ns });
    expect(stored.metadata?.annotations?.['sidekey.io/status']).toBe('injected');
    const agents = sidekeyContainers(stored);
    expect(agents).toHaveLength(1);
    const agent = agents[0] as V1Container;
    // Kubernetes >= 1.33: the agent is a native sidecar (an init container that keeps running).
    expect(stored.spec?.initContainers?.map((c) => c.name)).toContain(agent.name);
    expect(agent.restartPolicy).toBe('Always');
    const spec = JSON.parse(agent.env?.find((e) => e.name === 'SIDEKEY_SPEC')?.value ?? '{}');
    expect(spec.apiVersion).toBe('sidekey.io/v1');
    expect(JSON.stringify(spec)).toContain(CANARY_REF);
    const app = stored.spec?.containers.find((c) => c.name === 'app');
    expect(app?.volumeMounts?.some((m) => m.mountPath === '/run/sidekey')).toBe(true);
    const memoryVolume = stored.spec?.volumes?.find((v) => v.emptyDir?.medium === 'Memory');
    expect(memoryVolume).toBeDefined();
  });

  it('patches a pod with existing init containers, volumes and env secrets the way the API server applies it', async () => {
    const body = pod('migrated', optIn({ 'sidekey.io/env-db-password': 'DB_PASSWORD' }), {
      initContainers: [{ name: 'migrate', image: 'registry.example/migrate:1.0' }],
      volumes: [{ name: 'cache', emptyDir: {} }],
    });
    const app = body.spec?.containers[0] as V1Container;
    app.env = [
      { name: 'BEFORE', value: '1' },
      { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'app-db', key: 'password' } } },
      { name: 'AFTER', value: '2' },
    ];
    app.volumeMounts = [{ name: 'cache', mountPath: '/cache' }];
    await k.core.createNamespacedPod({ namespace: ns, body });
    const stored = await k.core.readNamespacedPod({ name: 'migrated', namespace: ns });
    const names = stored.spec?.initContainers?.map((c) => c.name) ?? [];
    // The agent comes first, so the files exist before the user's init containers run.
    expect(names).toHaveLength(2);
    expect(names[1]).toBe('migrate');
    expect(sidekeyContainers(stored).map((c) => c.name)).toEqual([names[0]]);
    expect(stored.spec?.volumes?.map((v) => v.name)).toContain('cache');
    const storedApp = stored.spec?.containers.find((c) => c.name === 'app');
    const env = storedApp?.env ?? [];
    expect(env.find((e) => e.name === 'DB_PASSWORD')).toBeUndefined();
    expect(env.find((e) => e.name === 'DB_PASSWORD_FILE')?.value).toBe('/run/sidekey/db-password');
    expect(env.filter((e) => e.name === 'BEFORE' || e.name === 'AFTER').map((e) => e.value)).toEqual([
      '1',
      '2',
    ]);
    expect(storedApp?.volumeMounts?.map((m) => m.mountPath)).toEqual(
      expect.arrayContaining(['/cache', '/run/sidekey']),
    );
  });

  it('classic mode (sidekey.io/mode: sidecar): a run-once init agent plus a long-running sidecar container', async () => {
    await k.core.createNamespacedPod({
      namespace: ns,
      body: pod('classic', optIn({ 'sidekey.io/mode': 'sidecar' })),
    });
    const stored = await k.core.readNamespacedPod({ name: 'classic', namespace: ns });
    const init = (stored.spec?.initContainers ?? []).filter((c) => sidekeyContainers(stored).includes(c));
    const side = stored.spec?.containers.filter((c) => sidekeyContainers(stored).includes(c)) ?? [];
    expect(init).toHaveLength(1);
    expect(init[0]?.restartPolicy).toBeUndefined();
    expect([...(init[0]?.command ?? []), ...(init[0]?.args ?? [])]).toContain('--once');
    expect(side).toHaveLength(1);
    expect([...(side[0]?.command ?? []), ...(side[0]?.args ?? [])]).not.toContain('--once');
  });

  it('leaves a pod that did not opt in untouched', async () => {
    const body = pod('plain', { 'sidekey.io/secret-db': CANARY_REF });
    await k.core.createNamespacedPod({ namespace: ns, body });
    const stored = await k.core.readNamespacedPod({ name: 'plain', namespace: ns });
    expect(stored.metadata?.annotations?.['sidekey.io/status']).toBeUndefined();
    expect(sidekeyContainers(stored)).toHaveLength(0);
    expect(stored.spec?.initContainers ?? []).toHaveLength(0);
    expect(stored.spec?.containers.map((c) => c.name)).toEqual(['app']);
  });

  it('rejects invalid annotations with an API error naming the annotation and the SK_ERR code', async () => {
    const body = pod('invalid', optIn({ 'sidekey.io/format-db-password': 'xml' }));
    const err = await apiError(() => k.core.createNamespacedPod({ namespace: ns, body }));
    expect(err.message).toContain('admission webhook "inject.sidekey.io" denied the request');
    expect(err.message).toContain('sidekey.io/format-db-password');
    expect(err.message).toMatch(/SK_ERR_[A-Z_]+/);
    expect(err.body).not.toContain('SKCANARY');
    await expect(k.core.readNamespacedPod({ name: 'invalid', namespace: ns })).rejects.toThrow();
  });

  it('does not mutate an UPDATE of an injected pod', async () => {
    await k.core.createNamespacedPod({ namespace: ns, body: pod('updated', optIn()) });
    const before = await k.core.readNamespacedPod({ name: 'updated', namespace: ns });
    const after = await k.core.patchNamespacedPod({
      name: 'updated',
      namespace: ns,
      body: [{ op: 'add', path: '/metadata/labels', value: { touched: 'yes' } }],
    });
    expect(after.metadata?.labels?.touched).toBe('yes');
    expect(after.metadata?.resourceVersion).not.toBe(before.metadata?.resourceVersion);
    expect(after.spec).toEqual(before.spec);
    expect(sidekeyContainers(after)).toHaveLength(1);
  });

  it('serves server-side dry-run (dryRun=All): the mutated pod is returned and nothing is stored', async () => {
    const dry = await k.core.createNamespacedPod({ namespace: ns, body: pod('dry', optIn()), dryRun: 'All' });
    expect(dry.metadata?.annotations?.['sidekey.io/status']).toBe('injected');
    expect(sidekeyContainers(dry)).toHaveLength(1);
    const err = await apiError(() => k.core.readNamespacedPod({ name: 'dry', namespace: ns }));
    expect(err.code).toBe(404);
  });

  it("sidekey check-webhook (the chart's helm test): ok through the real API server, fails where the webhook is not called", async () => {
    const env = { KUBECONFIG: inject('cluster').kubeconfig };
    const ok = await runCli(['check-webhook', '-n', ns, '-o', 'json'], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      namespace: ns,
      injected: true,
      agent: { name: 'sidekey-agent', nativeSidecar: true },
    });
    // A namespace enforcing the restricted Pod Security Standard: the dry-run pod passes validation.
    const restricted = await createNamespace(k, uniqueName('restricted-check'), {
      'pod-security.kubernetes.io/enforce': 'restricted',
    });
    const strict = await runCli(['check-webhook', '-n', restricted], { env });
    expect(strict.code, strict.stderr).toBe(0);
    expect(strict.stdout).toContain(`ok: the webhook injected a dry-run pod in namespace ${restricted}`);
    // The webhook's own namespace is never sent to it: the pod comes back without the agent. (No
    // controller-manager here: the pod's "default" ServiceAccount must be created by hand.)
    await k.core
      .createNamespacedServiceAccount({ namespace: sk.namespace, body: { metadata: { name: 'default' } } })
      .catch(() => {});
    const excluded = await runCli(['check-webhook', '-n', sk.namespace], { env });
    expect(excluded.code).toBe(1);
    expect(excluded.stderr).toMatch(
      new RegExp(
        `^SK_ERR_WEBHOOK_CHECK: the dry-run pod in namespace ${sk.namespace} was admitted without the agent`,
      ),
    );
  });

  it('admits injected pods in a namespace enforcing the restricted Pod Security Standard', async () => {
    const restricted = await createNamespace(k, uniqueName('restricted'), {
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/enforce-version': 'latest',
    });
    const created = await rawRequest(
      k,
      'POST',
      `/api/v1/namespaces/${restricted}/pods`,
      pod('strict', optIn()),
    );
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    expect(created.warnings).toEqual([]);
    const stored = await k.core.readNamespacedPod({ name: 'strict', namespace: restricted });
    const agent = sidekeyContainers(stored)[0];
    expect(agent?.securityContext?.runAsNonRoot ?? stored.spec?.securityContext?.runAsNonRoot).toBe(true);
    expect(agent?.securityContext?.allowPrivilegeEscalation).toBe(false);
  });

  it('skips a Windows pod, with the reason in the webhook log and metrics', async () => {
    const body = pod('windows', optIn(), { os: { name: 'windows' } });
    const c = body.spec?.containers[0];
    if (c) c.securityContext = {};
    const created = await rawRequest(k, 'POST', `/api/v1/namespaces/${ns}/pods`, body);
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    const stored = await k.core.readNamespacedPod({ name: 'windows', namespace: ns });
    expect(sidekeyContainers(stored)).toHaveLength(0);
    expect(stored.metadata?.annotations?.['sidekey.io/status']).toBeUndefined();
    expect(await sk.metrics()).toMatch(/^sidekey_webhook_skips_total\{reason="windows"\} 1$/m);
    const line = (sk.webhook?.log() ?? '').split('\n').find((l) => l.includes('"pod":"windows"'));
    expect(line).toContain('"reason":"windows"');
  });

  it("never sends the webhook's own pods to it (objectSelector), even with the webhook down", async () => {
    await sk.stopWebhook();
    try {
      const own = pod('webhook-replica', optIn());
      own.metadata = { ...own.metadata, labels: { 'sidekey.io/webhook': 'true' } };
      await k.core.createNamespacedPod({ namespace: ns, body: own });
      const stored = await k.core.readNamespacedPod({ name: 'webhook-replica', namespace: ns });
      expect(sidekeyContainers(stored)).toHaveLength(0);
      // The same pod without the label is refused: failurePolicy Fail is in force (chart default).
      const err = await apiError(() =>
        k.core.createNamespacedPod({ namespace: ns, body: pod('other', optIn()) }),
      );
      expect(err.message).toContain('failed calling webhook "inject.sidekey.io"');
    } finally {
      await sk.startWebhook();
    }
  });
});

describe('webhook down', () => {
  const k = kube();

  it('failurePolicy Ignore: the opted-in pod is created without injection, observably', async () => {
    const sk = await installSidekey(k, {
      release: 'sk-ignore',
      values: { webhook: { failurePolicy: 'Ignore' } },
    });
    try {
      await sk.stopWebhook();
      const ns = await createNamespace(k, uniqueName('ignore'));
      await k.core.createNamespacedPod({ namespace: ns, body: pod('unprotected', optIn()) });
      const stored = await k.core.readNamespacedPod({ name: 'unprotected', namespace: ns });
      // Observable: opted in but no sidekey.io/status (what `sidekey scan`/dashboards look for).
      expect(stored.metadata?.annotations?.['sidekey.io/inject']).toBe('true');
      expect(stored.metadata?.annotations?.['sidekey.io/status']).toBeUndefined();
      expect(sidekeyContainers(stored)).toHaveLength(0);
    } finally {
      await sk.uninstall();
    }
  });

  it('failurePolicy Fail: the opted-in pod is rejected with a clear message; other pods are not blocked', async () => {
    const sk = await installSidekey(k, {
      release: 'sk-fail',
      values: { webhook: { failurePolicy: 'Fail' } },
    });
    try {
      await sk.stopWebhook();
      const ns = await createNamespace(k, uniqueName('fail'));
      const err = await apiError(() =>
        k.core.createNamespacedPod({ namespace: ns, body: pod('blocked', optIn()) }),
      );
      expect(err.code).toBe(500);
      expect(err.message).toContain('failed calling webhook "inject.sidekey.io"');
      expect(err.message).toContain(sk.url);
      // matchConditions keep pods that did not opt in away from the unavailable webhook.
      await k.core.createNamespacedPod({ namespace: ns, body: pod('not-opted-in') });
    } finally {
      await sk.uninstall();
    }
  });
});

describe('onInvalidAnnotations: allow-without-injection', () => {
  const k = kube();

  it('admits the pod un-injected and the user sees why as an API warning (what kubectl prints)', async () => {
    const sk = await installSidekey(k, {
      release: 'sk-lenient',
      values: { onInvalidAnnotations: 'allow-without-injection' },
    });
    try {
      const ns = await createNamespace(k, uniqueName('lenient'));
      const body = pod('lenient', optIn({ 'sidekey.io/format-db-password': 'xml' }));
      const created = await rawRequest(k, 'POST', `/api/v1/namespaces/${ns}/pods`, body);
      expect(created.status, JSON.stringify(created.json)).toBe(201);
      const warning = created.warnings.join('\n');
      expect(warning).toContain('sidekey: not injected: SK_ERR_');
      expect(warning).toContain('sidekey.io/format-db-password');
      const stored = await k.core.readNamespacedPod({ name: 'lenient', namespace: ns });
      expect(sidekeyContainers(stored)).toHaveLength(0);
      expect(stored.metadata?.annotations?.['sidekey.io/status']).toBeUndefined();
      expect(await sk.metrics()).toMatch(
        /^sidekey_webhook_invalid_allowed_total\{code="SK_ERR_[A-Z_]+"\} 1$/m,
      );
    } finally {
      await sk.uninstall();
    }
  });
});
