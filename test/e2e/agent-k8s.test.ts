import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, kube, pod, uniqueName } from './harness/kube.js';
import { type AgentRun, runAgent } from './harness/pod-runner.js';
import { GiveUp, waitFor } from './harness/procs.js';
import { installSidekey, type SidekeyInstall } from './harness/sidekey.js';

const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';

// The k8s: provider end to end: the webhook injects the agent, the pod runner starts it from the
// stored pod with a real pod-bound token, and the agent reads (and watches) a Secret through RBAC.
describe('k8s: provider from an injected pod', () => {
  const k = kube();
  let sk: SidekeyInstall;
  let ns: string;
  let run: AgentRun | undefined;

  beforeAll(async () => {
    sk = await installSidekey(k, { release: 'sk-k8s' });
    ns = await createNamespace(k, uniqueName('k8s-provider'));
    await k.core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'app-db' }, stringData: { password: CANARY, user: 'app' } },
    });
    // What the user grants (docs): the pod's service account may read that one Secret.
    await k.rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: 'read-app-db' },
        rules: [
          {
            apiGroups: [''],
            resources: ['secrets'],
            resourceNames: ['app-db'],
            verbs: ['get', 'list', 'watch'],
          },
        ],
      },
    });
    await k.rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'read-app-db' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-app-db' },
        subjects: [{ kind: 'ServiceAccount', name: 'default', namespace: ns }],
      },
    });
  });
  afterAll(async () => {
    await run?.proc.stop();
    await sk?.uninstall();
  });

  it('writes a Secret from the API server, and rewrites the file when the Secret is updated (watch)', async () => {
    await k.core.createNamespacedPod({
      namespace: ns,
      body: pod('app', {
        'sidekey.io/inject': 'true',
        'sidekey.io/secret-db-password': 'k8s:app-db#password',
        'sidekey.io/refresh': '1h',
      }),
    });
    const stored = await k.core.readNamespacedPod({ name: 'app', namespace: ns });
    run = await runAgent(k, stored);
    const out = run.local('/run/sidekey');
    const file = join(out, 'db-password');
    const r = run;
    await waitFor(
      'the agent to write db-password',
      async () => {
        if (r.proc.ended()) throw new GiveUp(`agent ended (${r.proc.how()}):\n${r.proc.log().slice(-2000)}`);
        return existsSync(file) ? true : undefined;
      },
      60_000,
    );
    expect(readFileSync(file, 'utf8')).toBe(CANARY);
    expect(existsSync(join(out, '..data'))).toBe(true);
    // The native sidecar's startupProbe (what gates the app containers) now passes.
    expect(run.startupProbe()).toBe(0);

    // refresh is 1h: only the watch can bring the new value within the wait below.
    await k.core.replaceNamespacedSecret({
      name: 'app-db',
      namespace: ns,
      body: { metadata: { name: 'app-db' }, stringData: { password: `${CANARY}-rotated`, user: 'app' } },
    });
    await waitFor(
      'the watch to rewrite db-password',
      async () => (readFileSync(file, 'utf8') === `${CANARY}-rotated` ? true : undefined),
      30_000,
    );
    expect(run.proc.log()).not.toContain(CANARY);
    expect(sk.webhook?.log()).not.toContain(CANARY);
  });

  it("authenticates as the pod's service account: RBAC denies a Secret the Role does not name", async () => {
    await k.core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'not-granted' }, stringData: { password: CANARY } },
    });
    await k.core.createNamespacedPod({
      namespace: ns,
      body: pod('denied', { 'sidekey.io/inject': 'true', 'sidekey.io/secret-x': 'k8s:not-granted#password' }),
    });
    const stored = await k.core.readNamespacedPod({ name: 'denied', namespace: ns });
    const denied = await runAgent(k, stored);
    try {
      const line = await waitFor(
        'the agent to report the denial',
        async () =>
          denied.proc
            .log()
            .split('\n')
            .find((l) => l.includes('SK_ERR_BACKEND_DENIED')),
        30_000,
      );
      expect(line).toContain('not-granted');
      expect(existsSync(join(denied.local('/run/sidekey'), 'x'))).toBe(false);
      // ... so the startupProbe keeps failing and the app containers would never start without files.
      expect(denied.startupProbe()).not.toBe(0);
      expect(denied.proc.log()).not.toContain(CANARY);
    } finally {
      await denied.proc.stop();
    }
  });

  it('init-only mode: the injected init container fetches once, writes and exits 0', async () => {
    await k.core.createNamespacedPod({
      namespace: ns,
      body: pod('once', {
        'sidekey.io/inject': 'true',
        'sidekey.io/mode': 'init-only',
        'sidekey.io/secret-db-password': 'k8s:app-db#password',
      }),
    });
    const stored = await k.core.readNamespacedPod({ name: 'once', namespace: ns });
    const once = await runAgent(k, stored);
    expect(once.init).toBe(true);
    expect(once.container.restartPolicy).toBeUndefined();
    expect(once.args).toContain('--once');
    expect(await once.proc.exited).toBe(0);
    expect(readFileSync(join(once.local('/run/sidekey'), 'db-password'), 'utf8')).toMatch(/^SKCANARY-/);
    expect(once.proc.log()).not.toContain(CANARY);
  });

  it('automountServiceAccountToken: false: the agent still gets its own token, the app none', async () => {
    await k.core.createNamespacedPod({
      namespace: ns,
      body: pod(
        'no-automount',
        { 'sidekey.io/inject': 'true', 'sidekey.io/secret-db-password': 'k8s:app-db#password' },
        { automountServiceAccountToken: false },
      ),
    });
    const stored = await k.core.readNamespacedPod({ name: 'no-automount', namespace: ns });
    expect(stored.spec?.volumes?.some((v) => v.name.startsWith('kube-api-access-'))).toBe(false);
    const app = stored.spec?.containers.find((c) => c.name === 'app');
    expect(app?.volumeMounts?.some((m) => m.mountPath.startsWith('/var/run/secrets/'))).toBe(false);
    const r = await runAgent(k, stored);
    try {
      const file = join(r.local('/run/sidekey'), 'db-password');
      await waitFor(
        'the agent to write db-password',
        async () => {
          if (r.proc.ended())
            throw new GiveUp(`agent ended (${r.proc.how()}):\n${r.proc.log().slice(-2000)}`);
          return existsSync(file) ? true : undefined;
        },
        60_000,
      );
      expect(readFileSync(file, 'utf8')).toMatch(/^SKCANARY-/);
    } finally {
      await r.proc.stop();
    }
  });
});
