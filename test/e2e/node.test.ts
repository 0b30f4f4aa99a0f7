import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { BatchV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CANARY } from '../helpers/cli.ts';
import { apiError, createNamespace, type Kube, kube, uniqueName } from './harness/kube.js';
import {
  appContainer,
  appRunning,
  containerPid,
  containerStartedAt,
  describe as describePod,
  node,
  nodePod,
  podLog,
  statuses,
  waitLog,
  waitPod,
} from './harness/node-pods.js';
import { waitFor } from './harness/procs.js';
import { installSidekey, type SidekeyInstall } from './harness/sidekey.js';

// Real pods on the e2e node (kubelet + containerd + runc): created through the API server, mutated by
// the real webhook, started by the kubelet from the local sidekey image. The secret comes from a
// Kubernetes Secret through the k8s: provider, read with the pod's own projected token via the
// `kubernetes` Service address. The app containers print what they see; tests read it from the
// kubelet through the API server (pod logs), as `kubectl logs` would.

const MOUNT = '/run/sidekey';
/** A value the apps print (so not the canary, which no log of the run may contain). */
const VALUE = `node-e2e-${process.pid.toString(36)}-v1`;
const ROTATED = `node-e2e-${process.pid.toString(36)}-v2`;

/** Scopes an install's webhook to namespaces carrying its release label (installs never overlap). */
const scoped = (release: string, values: Record<string, unknown> = {}): Record<string, unknown> => {
  const n = node();
  return {
    ...values,
    agent: { image: n.images.sidekey.ref, imagePullPolicy: 'Never' },
    webhook: {
      ...(values.webhook as object),
      namespaceSelector: { matchLabels: { 'sidekey.io/e2e-release': release } },
    },
  };
};

/** A namespace for `release`'s webhook with a readable Secret `app-db` and, optionally, Pod Security. */
async function secretNamespace(
  k: Kube,
  prefix: string,
  release: string,
  labels: Record<string, string> = {},
): Promise<string> {
  const ns = await createNamespace(k, uniqueName(prefix), {
    'sidekey.io/e2e-release': release,
    ...labels,
  });
  await k.core.createNamespacedSecret({
    namespace: ns,
    // token: the canary, which the apps never print; the global teardown checks that no log of the
    // run (kubelet, containerd, every container's log) has it.
    body: { metadata: { name: 'app-db' }, stringData: { password: VALUE, token: CANARY } },
  });
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
  return ns;
}

const optIn = (extra: Record<string, string> = {}): Record<string, string> => ({
  'sidekey.io/inject': 'true',
  'sidekey.io/secret-db-password': 'k8s:app-db#password',
  'sidekey.io/secret-api-token': 'k8s:app-db#token',
  ...extra,
});

/**
 * The app's first instruction reads both files (`set -e`: a missing file ends the container); it
 * prints the password and only the length of the token (the canary).
 */
const READ_FIRST = `set -e; v=$(cat ${MOUNT}/db-password); t=$(cat ${MOUNT}/api-token); echo "first-read db-password=$v api-token-bytes=\${#t}"`;
const FIRST = `first-read db-password=${VALUE} api-token-bytes=${CANARY.length}`;

/** What the app reports about its files after the first read. */
const REPORT = [
  `echo "files: $(ls ${MOUNT} | tr '\\n' ' ')"`,
  `echo "mount: $(grep ' ${MOUNT} ' /proc/mounts)"`,
  'echo "id: uid=$(id -u) gid=$(id -g)"',
  `echo "mode: $(stat -L -c '%a %u %g' ${MOUNT}/db-password)"`,
  `if (echo x > ${MOUNT}/db-password) 2>/dev/null; then echo "write-file: allowed"; else echo "write-file: denied"; fi`,
  `if touch ${MOUNT}/new 2>/dev/null; then echo "create-file: allowed"; else echo "create-file: denied"; fi`,
].join('; ');

const lines = async (k: Kube, ns: string, pod: string, c: string): Promise<string[]> =>
  (await podLog(k, ns, pod, c)).map((l) => l.line);

describe('real pods on a kubelet + containerd node', () => {
  const k = kube();
  const n = node();
  const release = 'sk-node';
  let sk: SidekeyInstall;
  let ns: string;
  const created: Record<string, number> = {};

  /** Creates a pod and notes when (for the pod create → app running figure). */
  const create = async (namespace: string, p: V1Pod): Promise<void> => {
    created[`${namespace}/${p.metadata?.name}`] = Date.now();
    await k.core.createNamespacedPod({ namespace, body: p });
  };

  beforeAll(async () => {
    sk = await installSidekey(k, { release, values: scoped(release) });
    // Every injected pod of this file runs where the restricted Pod Security Standard is enforced.
    ns = await secretNamespace(k, 'node', release, {
      'pod-security.kubernetes.io/enforce': 'restricted',
    });
  });
  afterAll(async () => {
    await sk?.uninstall();
  });

  /** Pod create → the app's first log line (printed after it read its files); agent start → files written. */
  const timings = async (
    namespace: string,
    pod: string,
    agentName: string,
  ): Promise<{ createToApp: number; agentToFiles: number | undefined }> => {
    const app = await waitLog(k, namespace, pod, 'app', /^first-read /);
    // The agent logs this line right after its first complete write (init agent: before exiting).
    const written = (await podLog(k, namespace, pod, agentName)).find((l) =>
      /ready: first complete write done|wrote all secrets/.test(l.line),
    );
    const p = await k.core.readNamespacedPod({ name: pod, namespace });
    const s = statuses(p).find((x) => x.name === agentName);
    const started = s?.containerID ? containerStartedAt(n, s.containerID) : undefined;
    return {
      createToApp: app.at - (created[`${namespace}/${pod}`] ?? Number.NaN),
      agentToFiles: written && started ? written.at - started : undefined,
    };
  };
  it('1. native sidecar: the app’s first instruction sees every file', async () => {
    await create(
      ns,
      nodePod(n, 'native', optIn({ 'sidekey.io/tmpfs-size': '2Mi' }), `${READ_FIRST}; ${REPORT}; sleep 3600`),
    );
    const stored = await k.core.readNamespacedPod({ name: 'native', namespace: ns });
    const agent = stored.spec?.initContainers?.find((c) => c.name === 'sidekey-agent');
    expect(agent?.restartPolicy).toBe('Always');
    expect(agent?.image).toBe(n.images.sidekey.ref);
    const running = await waitPod(k, ns, 'native', 'app running', appRunning);
    const log = await lines(k, ns, 'native', 'app');
    console.log(`native pod, app output:\n  ${log.join('\n  ')}`);
    expect(log).toContain(FIRST);
    expect(log.find((l) => l.startsWith('files: '))).toBe('files: api-token db-password ');
    // The containers really are the locally built images (the CRI reports their config digests).
    const byName = Object.fromEntries(statuses(running).map((s) => [s.name, s.imageID]));
    expect(byName['sidekey-agent']).toContain(n.images.sidekey.id.replace('sha256:', ''));
    expect(byName.app).toContain(n.images.app.id.replace('sha256:', ''));
    const t = await timings(ns, 'native', 'sidekey-agent');
    console.log(
      `native: pod create → app running with files ${t.createToApp} ms; agent start → files written ${t.agentToFiles} ms`,
    );
    const agentLog = (await lines(k, ns, 'native', 'sidekey-agent')).join('\n');
    expect(agentLog).toContain('ready: first complete write done');
    expect(agentLog).not.toContain(VALUE);
    expect(agentLog).not.toContain(CANARY);
  });

  it('1b. native sidecar with the agent listener: the kubelet’s httpGet startup probe on the pod’s IP gates the app', async () => {
    await create(
      ns,
      nodePod(n, 'native-http', optIn({ 'sidekey.io/metrics-port': '9102' }), `${READ_FIRST}; sleep 3600`),
    );
    const stored = await k.core.readNamespacedPod({ name: 'native-http', namespace: ns });
    const agent = stored.spec?.initContainers?.find((c) => c.name === 'sidekey-agent');
    expect(agent?.startupProbe?.httpGet?.path).toBe('/readyz');
    const running = await waitPod(k, ns, 'native-http', 'app running', appRunning);
    // The pod has an address of its own on the run's bridge, where the kubelet probed the agent.
    expect(running.status?.podIP).toMatch(/^10\.250\./);
    expect(running.status?.initContainerStatuses?.find((s) => s.name === 'sidekey-agent')?.started).toBe(
      true,
    );
    const log = await lines(k, ns, 'native-http', 'app');
    expect(log).toContain(FIRST);
    const t = await timings(ns, 'native-http', 'sidekey-agent');
    console.log(
      `native (httpGet probe): pod create → app running with files ${t.createToApp} ms; agent start → files written ${t.agentToFiles} ms`,
    );
  });

  it('2. classic layout (init + sidecar): the app’s first instruction sees every file', async () => {
    await create(
      ns,
      // A long-running pod (restartPolicy Always): a pod that runs to completion never gets a classic
      // sidecar (it would keep the pod running), it gets init-only (docs/webhook.md, "Jobs").
      nodePod(n, 'classic', optIn({ 'sidekey.io/mode': 'sidecar' }), `${READ_FIRST}; sleep 3600`, {
        restartPolicy: 'Always',
      }),
    );
    const stored = await k.core.readNamespacedPod({ name: 'classic', namespace: ns });
    expect(stored.spec?.initContainers?.map((c) => c.name)).toContain('sidekey-init');
    expect(stored.spec?.containers.map((c) => c.name)).toContain('sidekey-agent');
    const running = await waitPod(k, ns, 'classic', 'app and sidecar running', (p) =>
      ['app', 'sidekey-agent'].every(
        (c) => p.status?.containerStatuses?.find((s) => s.name === c)?.state?.running,
      ),
    );
    const init = running.status?.initContainerStatuses?.find((s) => s.name === 'sidekey-init');
    expect(init?.state?.terminated?.exitCode).toBe(0);
    const log = await lines(k, ns, 'classic', 'app');
    console.log(`classic pod, app output:\n  ${log.join('\n  ')}`);
    expect(log).toContain(FIRST);
    const t = await timings(ns, 'classic', 'sidekey-init');
    console.log(
      `classic: pod create → app running with files ${t.createToApp} ms; init agent start → files written ${t.agentToFiles ?? 'n/a'} ms`,
    );
  });

  it('3. a Job with the native sidecar completes and the Job reaches Complete', async () => {
    const batch = k.kc.makeApiClient(BatchV1Api);
    const tmpl = nodePod(n, 'job', optIn(), `${READ_FIRST}; echo job-done`);
    const job: V1Job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'once' },
      spec: {
        backoffLimit: 0,
        template: { metadata: { annotations: tmpl.metadata?.annotations }, spec: tmpl.spec as V1Pod['spec'] },
      },
    };
    await batch.createNamespacedJob({ namespace: ns, body: job });
    const done = await waitFor(
      'Job once to be Complete',
      async () => {
        const j = await batch.readNamespacedJob({ name: 'once', namespace: ns });
        if (j.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True')) {
          const pods = await k.core.listNamespacedPod({ namespace: ns, labelSelector: 'job-name=once' });
          const why = await Promise.all(
            pods.items.map((p) => describePod(k, ns, p.metadata?.name as string)),
          );
          throw new Error(`Job failed: ${JSON.stringify(j.status?.conditions)}\n${why.join('\n')}`);
        }
        return j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True')
          ? j
          : undefined;
      },
      150_000,
      500,
    );
    expect(done.status?.succeeded).toBe(1);
    const pods = await k.core.listNamespacedPod({ namespace: ns, labelSelector: 'job-name=once' });
    expect(pods.items).toHaveLength(1);
    const p = pods.items[0] as V1Pod;
    expect(p.status?.phase).toBe('Succeeded');
    // The sidecar was injected (and stopped by the kubelet once the app exited).
    expect(p.spec?.initContainers?.find((c) => c.name === 'sidekey-agent')?.restartPolicy).toBe('Always');
    const log = await lines(k, ns, p.metadata?.name as string, 'app');
    console.log(`job pod, app output:\n  ${log.join('\n  ')}`);
    expect(log).toEqual([FIRST, 'job-done']);
  });

  it('3b. a run-to-completion pod with a classic sidecar and sidekey.io/exit-file completes when the app writes the file', async () => {
    const exit = '/run/sidekey-exit/done';
    await create(
      ns,
      nodePod(
        n,
        'exit-file',
        optIn({ 'sidekey.io/mode': 'sidecar', 'sidekey.io/exit-file': exit }),
        `${READ_FIRST}; echo app-done; touch ${exit}`,
      ),
    );
    const stored = await k.core.readNamespacedPod({ name: 'exit-file', namespace: ns });
    // Asked for rotation with an exit file: the classic sidecar stays, with the shared volume.
    expect(stored.spec?.containers.map((c) => c.name)).toEqual(['app', 'sidekey-agent']);
    expect(stored.spec?.volumes?.map((v) => v.name)).toContain('sidekey-exit');
    const done = await waitPod(k, ns, 'exit-file', 'pod Succeeded', (p) => p.status?.phase === 'Succeeded');
    const agent = done.status?.containerStatuses?.find((s) => s.name === 'sidekey-agent');
    expect(agent?.state?.terminated?.exitCode).toBe(0);
    expect(await lines(k, ns, 'exit-file', 'app')).toEqual([FIRST, 'app-done']);
  });

  it('4. the secrets volume is a tmpfs with the configured size limit (seen from inside the app)', async () => {
    const log = await lines(k, ns, 'native', 'app');
    const mount = log.find((l) => l.startsWith('mount: '));
    // sidekey.io/tmpfs-size: 2Mi → emptyDir medium Memory, sizeLimit 2Mi → tmpfs size=2048k, read-only.
    expect(mount).toMatch(new RegExp(`^mount: tmpfs ${MOUNT} tmpfs ro,.*size=2048k`));
  });

  it('5. the app (non-root, the pod’s uid) reads 0440 files and cannot write the mount', async () => {
    const log = await lines(k, ns, 'native', 'app');
    expect(log).toContain('id: uid=1000 gid=1000');
    expect(log).toContain('mode: 440 1000 1000');
    expect(log).toContain(FIRST);
    expect(log).toContain('write-file: denied');
    expect(log).toContain('create-file: denied');
  });

  it('6. rotation: a Secret update reaches the running app, which gets SIGHUP across the shared process namespace', async () => {
    const ns6 = await secretNamespace(k, 'node-rotate', release, {
      'pod-security.kubernetes.io/enforce': 'restricted',
    });
    const script = [
      READ_FIRST,
      `trap 'echo "HUP db-password=$(cat ${MOUNT}/db-password)"' HUP`,
      'while true; do sleep 1 & wait $!; done',
    ].join('; ');
    await create(
      ns6,
      nodePod(
        n,
        'rotate',
        optIn({ 'sidekey.io/on-change': 'signal:HUP', 'sidekey.io/refresh': '1h' }),
        script,
      ),
    );
    const stored = await k.core.readNamespacedPod({ name: 'rotate', namespace: ns6 });
    expect(stored.spec?.shareProcessNamespace).toBe(true);
    await waitPod(k, ns6, 'rotate', 'app running', appRunning);
    await waitLog(k, ns6, 'rotate', 'app', /^first-read /);
    await k.core.replaceNamespacedSecret({
      name: 'app-db',
      namespace: ns6,
      body: { metadata: { name: 'app-db' }, stringData: { password: ROTATED, token: CANARY } },
    });
    // refresh is 1h: the watch brings the change; the HUP handler reads the new file.
    const hup = await waitLog(k, ns6, 'rotate', 'app', /^HUP /, 60_000);
    console.log(`rotate pod, app output:\n  ${(await lines(k, ns6, 'rotate', 'app')).join('\n  ')}`);
    expect(hup.line).toBe(`HUP db-password=${ROTATED}`);
  });

  it('7. the agent killed is restarted by the kubelet, and the files survive', async () => {
    const ns7 = await secretNamespace(k, 'node-kill', release, {
      'pod-security.kubernetes.io/enforce': 'restricted',
    });
    // The app checks every 0.2 s that the file is there, and reports when its generation changes.
    const script = [
      READ_FIRST,
      `g=$(readlink ${MOUNT}/..data); echo "generation $g"`,
      `while true; do [ -s ${MOUNT}/db-password ] || echo MISSING; h=$(readlink ${MOUNT}/..data); [ "$h" = "$g" ] || { echo "generation $h"; g=$h; }; sleep 0.2; done`,
    ].join('; ');
    await create(ns7, nodePod(n, 'killed', optIn(), script));
    const before = await waitPod(k, ns7, 'killed', 'app running', appRunning);
    await waitLog(k, ns7, 'killed', 'app', /^generation /);
    const agent = before.status?.initContainerStatuses?.find((s) => s.name === 'sidekey-agent');
    expect(agent?.restartCount).toBe(0);
    const pid = containerPid(n, agent?.containerID as string);
    process.kill(pid, 'SIGKILL');
    const after = await waitPod(
      k,
      ns7,
      'killed',
      'agent restarted and started again',
      (p) => {
        const s = p.status?.initContainerStatuses?.find((x) => x.name === 'sidekey-agent');
        return (s?.restartCount ?? 0) >= 1 && s?.state?.running !== undefined && s.started === true;
      },
      { failOnError: false, timeoutMs: 90_000 },
    );
    const s = after.status?.initContainerStatuses?.find((x) => x.name === 'sidekey-agent');
    expect(s?.lastState?.terminated?.exitCode).toBe(137);
    // The restarted agent finds the files and (nothing changed) keeps them: no gap, same generation.
    await waitLog(k, ns7, 'killed', 'sidekey-agent', /ready: first complete write done/);
    await new Promise((r) => setTimeout(r, 1000));
    const log = await lines(k, ns7, 'killed', 'app');
    console.log(`killed pod, app output:\n  ${log.join('\n  ')}`);
    expect(log).not.toContain('MISSING');
    expect(log.filter((l) => l.startsWith('generation '))).toHaveLength(1);
    expect(after.status?.containerStatuses?.find((x) => x.name === 'app')?.restartCount).toBe(0);
  });

  it('8. webhook unavailable: Fail refuses the pod with a clear message; Ignore runs it uninjected, visibly', async () => {
    const failing = await installSidekey(k, {
      release: 'sk-node-fail',
      values: scoped('sk-node-fail', { webhook: { failurePolicy: 'Fail' } }),
    });
    const ignoring = await installSidekey(k, {
      release: 'sk-node-ignore',
      values: scoped('sk-node-ignore', { webhook: { failurePolicy: 'Ignore' } }),
    });
    try {
      await failing.stopWebhook();
      await ignoring.stopWebhook();
      const nsFail = await secretNamespace(k, 'node-fail', 'sk-node-fail');
      const err = await apiError(() =>
        k.core.createNamespacedPod({ namespace: nsFail, body: nodePod(n, 'refused', optIn(), 'sleep 1') }),
      );
      expect(err.code).toBe(500);
      expect(err.message).toContain('failed calling webhook "inject.sidekey.io"');
      expect(err.message).toContain(failing.url);

      const nsIgnore = await secretNamespace(k, 'node-ignore', 'sk-node-ignore');
      const script = `if [ -e ${MOUNT}/db-password ]; then echo "has secrets"; else echo "no secrets: ${MOUNT} missing"; fi; sleep 3600`;
      await create(nsIgnore, nodePod(n, 'uninjected', optIn(), script));
      const p = await waitPod(k, nsIgnore, 'uninjected', 'app running', appRunning);
      // Visible as documented: opted in, but no sidekey.io/status; no agent container ran.
      expect(p.metadata?.annotations?.['sidekey.io/inject']).toBe('true');
      expect(p.metadata?.annotations?.['sidekey.io/status']).toBeUndefined();
      expect(statuses(p).map((s) => s.name)).toEqual(['app']);
      const log = await waitLog(k, nsIgnore, 'uninjected', 'app', /secrets/);
      console.log(`uninjected pod, app output: ${log.line}`);
      expect(log.line).toBe(`no secrets: ${MOUNT} missing`);
    } finally {
      await failing.uninstall();
      await ignoring.uninstall();
    }
  });

  it('9. PSA restricted: the namespace enforces it, and the injected pods were admitted and run', async () => {
    const nsObj = await k.core.readNamespace({ name: ns });
    expect(nsObj.metadata?.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
    // Enforced for real: the same app without its restricted settings is refused.
    const loose = nodePod(n, 'loose', {}, 'sleep 1');
    loose.spec = {
      ...loose.spec,
      securityContext: {},
      containers: [{ ...appContainer(n, 'sleep 1'), securityContext: {} }],
    };
    const err = await apiError(() => k.core.createNamespacedPod({ namespace: ns, body: loose }));
    expect(err.code).toBe(403);
    expect(err.message).toContain('violates PodSecurity "restricted:latest"');
    // The injected pods of scenarios 1 and 2 (in this namespace) are running with every container ready.
    for (const name of ['native', 'classic']) {
      const p = await k.core.readNamespacedPod({ name, namespace: ns });
      expect(p.status?.phase).toBe('Running');
      expect(p.metadata?.annotations?.['sidekey.io/status']).toBe('injected');
      expect(p.status?.containerStatuses?.every((s) => s.ready)).toBe(true);
    }
  });
});
