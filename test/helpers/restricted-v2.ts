import type { Container, Pod } from '../../webhook/k8s.js';

/**
 * OpenShift's `restricted-v2` SecurityContextConstraints, as its admission applies them to a pod:
 * the rules as documented for the SCC (OpenShift 4.11+), written out so a test can check a pod the
 * webhook produced without an OpenShift cluster.
 *
 * - runAsUser `MustRunAsRange`: a uid set by a container (or the pod) must lie in the namespace's
 *   range (annotation `openshift.io/sa.scc.uid-range`); an unset one is assigned the range's first uid.
 * - fsGroup `MustRunAs`: set from the range when the pod sets none, else must lie in it.
 * - `allowPrivilegeEscalation: false`, no privileged containers, `requiredDropCapabilities: [ALL]`,
 *   `allowedCapabilities: [NET_BIND_SERVICE]`, seccomp `runtime/default` only.
 * - volumes: configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret;
 *   no host network, PID, IPC or ports.
 */
export interface UidRange {
  readonly first: number;
  readonly size: number;
}

const VOLUME_TYPES = new Set([
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
]);

function inRange(n: number, r: UidRange): boolean {
  return n >= r.first && n < r.first + r.size;
}

/** Violations of restricted-v2 by one container of `pod`; empty = admitted. */
export function containerViolations(pod: Pod, c: Container, range: UidRange): string[] {
  const out: string[] = [];
  const sc = c.securityContext ?? {};
  const podSc = pod.spec?.securityContext ?? {};
  const uid = sc.runAsUser ?? podSc.runAsUser;
  if (uid !== undefined && !inRange(uid, range))
    out.push(`${c.name}: runAsUser ${uid} is not in the namespace's range`);
  if (sc.privileged === true) out.push(`${c.name}: privileged`);
  if (sc.allowPrivilegeEscalation !== false) out.push(`${c.name}: allowPrivilegeEscalation is not false`);
  if (!(sc.capabilities?.drop ?? []).includes('ALL')) out.push(`${c.name}: capabilities.drop lacks ALL`);
  for (const cap of sc.capabilities?.add ?? []) {
    if (cap !== 'NET_BIND_SERVICE') out.push(`${c.name}: capability ${cap} is not allowed`);
  }
  const seccomp = sc.seccompProfile?.type ?? (podSc.seccompProfile as { type?: string } | undefined)?.type;
  if (seccomp !== undefined && seccomp !== 'RuntimeDefault') out.push(`${c.name}: seccomp ${seccomp}`);
  for (const p of (c.ports as Array<{ hostPort?: number }> | undefined) ?? []) {
    if (p.hostPort) out.push(`${c.name}: hostPort`);
  }
  return out;
}

/** Violations of restricted-v2 by the pod-level settings and volumes. */
export function podViolations(pod: Pod, range: UidRange): string[] {
  const out: string[] = [];
  const spec = pod.spec!;
  for (const k of ['hostNetwork', 'hostPID', 'hostIPC'] as const) if (spec[k] === true) out.push(k);
  const fsGroup = spec.securityContext?.fsGroup;
  if (fsGroup !== undefined && !inRange(fsGroup, range)) out.push(`fsGroup ${fsGroup} is not in the range`);
  for (const v of spec.volumes ?? []) {
    const type = Object.keys(v).find((k) => k !== 'name');
    if (!type || !VOLUME_TYPES.has(type)) out.push(`volume ${v.name}: ${type} is not allowed`);
  }
  return out;
}

/**
 * What the SCC admission does to an admitted pod: containers without a uid get the range's first uid,
 * a pod without an fsGroup gets the range's first value. Returns each container's effective uid.
 */
export function assignedUids(pod: Pod, range: UidRange): { uids: Map<string, number>; fsGroup: number } {
  const podSc = pod.spec?.securityContext ?? {};
  const uids = new Map<string, number>();
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    uids.set(c.name, c.securityContext?.runAsUser ?? podSc.runAsUser ?? range.first);
  }
  return { uids, fsGroup: podSc.fsGroup ?? range.first };
}
