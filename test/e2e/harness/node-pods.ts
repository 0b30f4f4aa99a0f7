import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Container, V1ContainerStatus, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import { inject } from 'vitest';
import type { Kube } from './kube.js';
import type { NodeInfo } from './node.js';
import { GiveUp, waitFor } from './procs.js';
import { tool } from './tools.js';

/** The node started by test/e2e/global-setup.ts. */
export function node(): NodeInfo {
  return inject('node');
}

/** The restricted Pod Security Standard's container settings (what every test container sets). */
export const RESTRICTED_CONTAINER = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
};

/**
 * A pod that runs on the e2e node: bound to it by name (there is no scheduler), the app container
 * from the local busybox image running `script` with sh as uid/gid 1000, restricted-compliant.
 */
export function nodePod(
  n: NodeInfo,
  name: string,
  annotations: Record<string, string>,
  script: string,
  spec: Partial<V1PodSpec> = {},
): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations },
    spec: {
      nodeName: n.name,
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 2,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 1000,
        runAsGroup: 1000,
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [appContainer(n, script)],
      ...spec,
    },
  };
}

export function appContainer(n: NodeInfo, script: string): V1Container {
  return {
    name: 'app',
    image: n.images.app.ref,
    imagePullPolicy: 'Never',
    command: ['sh', '-c', script],
    securityContext: RESTRICTED_CONTAINER,
  };
}

export function statuses(p: V1Pod): V1ContainerStatus[] {
  return [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])];
}

/** Why a pod will never get where a test waits for it (a container failed to be created or crashed). */
function hopeless(p: V1Pod): string | undefined {
  for (const s of statuses(p)) {
    const w = s.state?.waiting;
    if (w && /Err|Invalid|CreateContainerConfigError|CrashLoopBackOff/.test(w.reason ?? '')) {
      return `${s.name}: ${w.reason}: ${w.message ?? ''}`;
    }
  }
  if (p.status?.phase === 'Failed') return `pod Failed: ${p.status.reason ?? ''} ${p.status.message ?? ''}`;
  return undefined;
}

/** Waits until `check` holds on the pod; gives up early when the pod cannot get there. */
export async function waitPod(
  k: Kube,
  ns: string,
  name: string,
  what: string,
  check: (p: V1Pod) => boolean,
  opts: { timeoutMs?: number; failOnError?: boolean } = {},
): Promise<V1Pod> {
  return await waitFor(
    `pod ${ns}/${name}: ${what}`,
    async () => {
      const p = await k.core.readNamespacedPod({ name, namespace: ns });
      if (check(p)) return p;
      const bad = opts.failOnError === false ? undefined : hopeless(p);
      if (bad) {
        throw new GiveUp(`pod ${ns}/${name} (${what}): ${bad}\n${await describe(k, ns, name)}`);
      }
      return undefined;
    },
    opts.timeoutMs ?? 120_000,
    250,
  );
}

/** The app container is running (the native sidecar's startup probe passed, or the init agent exited 0). */
export const appRunning = (p: V1Pod): boolean =>
  p.status?.containerStatuses?.some((s) => s.name === 'app' && s.state?.running !== undefined) ?? false;

/** A container's log as the API server serves it (from the kubelet), with CRI timestamps. */
export async function podLog(
  k: Kube,
  ns: string,
  name: string,
  container: string,
  opts: { previous?: boolean } = {},
): Promise<Array<{ at: number; line: string }>> {
  const text = await k.core.readNamespacedPodLog({
    name,
    namespace: ns,
    container,
    timestamps: true,
    previous: opts.previous,
  });
  return String(text)
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const sp = l.indexOf(' ');
      return { at: Date.parse(l.slice(0, sp)), line: l.slice(sp + 1) };
    });
}

/** Waits for a log line matching `re` in a container; returns it with its timestamp. */
export async function waitLog(
  k: Kube,
  ns: string,
  name: string,
  container: string,
  re: RegExp,
  timeoutMs = 60_000,
): Promise<{ at: number; line: string }> {
  return await waitFor(
    `pod ${ns}/${name} container ${container} to log ${re}`,
    async () => (await podLog(k, ns, name, container).catch(() => [])).find((l) => re.test(l.line)),
    timeoutMs,
    250,
  );
}

/** Events and container states of a pod, for failure messages. */
export async function describe(k: Kube, ns: string, name: string): Promise<string> {
  try {
    const p = await k.core.readNamespacedPod({ name, namespace: ns });
    const events = await k.core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: `involvedObject.name=${name}`,
    });
    return [
      `phase ${p.status?.phase}`,
      ...statuses(p).map((s) => `  ${s.name}: ${JSON.stringify(s.state)} restarts ${s.restartCount}`),
      ...events.items.map((e) => `  event ${e.reason}: ${e.message}`),
    ].join('\n');
  } catch (e) {
    return String(e);
  }
}

/** The host pid of a running container's main process (from containerd's task list). */
export function containerPid(n: NodeInfo, containerId: string): number {
  const id = containerId.replace(/^containerd:\/\//, '');
  const out = execFileSync(tool('ctr'), ['--address', n.containerdSock, '-n', 'k8s.io', 'tasks', 'ls'], {
    encoding: 'utf8',
  });
  for (const line of out.split('\n')) {
    const [task, pid, status] = line.trim().split(/\s+/);
    if (task === id && status === 'RUNNING') return Number(pid);
  }
  throw new Error(`container ${id} has no running task:\n${out}`);
}

/**
 * When containerd started a container (ms since the epoch): its log's `StartContainer … returns
 * successfully` line, written once runc has started the container's process.
 */
export function containerStartedAt(n: NodeInfo, containerId: string): number | undefined {
  const id = containerId.replace(/^containerd:\/\//, '');
  const log = readFileSync(join(n.dir, 'containerd.log'), 'utf8');
  const line = log.split('\n').find((l) => l.includes(`StartContainer for \\"${id}\\" returns successfully`));
  const at = line ? /time="([^"]+)"/.exec(line)?.[1] : undefined;
  return at ? Date.parse(at) : undefined;
}
