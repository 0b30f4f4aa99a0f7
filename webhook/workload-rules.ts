import path from 'node:path';
import {
  ANN_EXIT_FILE,
  ANN_MODE,
  ANN_RUN_AS_USER,
  type InjectOptions,
  secretKey,
} from '../src/annotations.js';
import { SkError } from '../src/errors.js';
import type { ResolvedSpec } from '../src/spec.js';
import type { ClusterDefaults } from './defaults.js';
import type { Container, Pod } from './k8s.js';

/**
 * The rules that keep common workloads working: pods that run to completion (Jobs), the agent's
 * identity (OpenShift, pods that set no uid) and whether the app can read its files. Pure functions of
 * the pod, its options and the cluster defaults; each returns the warnings the user gets at admission
 * (kubectl prints them) and from `sidekey inject`.
 */

/** The mode a pod ends up with. */
export type ResolvedMode = 'native' | 'sidecar' | 'init-only';

/**
 * Whether the pod runs to completion: `restartPolicy` Never or OnFailure, or owned by a Job (a
 * CronJob's pods are owned by the Job it creates). Such a pod must never get a classic sidecar that
 * would keep it running after the app ends.
 */
export function runsToCompletion(pod: Pod, workloadKind?: string): boolean {
  if (workloadKind === 'Job' || workloadKind === 'CronJob') return true;
  const rp = pod.spec?.restartPolicy;
  if (rp === 'Never' || rp === 'OnFailure') return true;
  const owners = pod.metadata?.ownerReferences;
  return Array.isArray(owners) && owners.some((o) => o?.kind === 'Job' || o?.kind === 'CronJob');
}

export interface ModeDecision {
  readonly mode: ResolvedMode;
  /** The classic sidecar stops when this file appears (a run-to-completion pod that asked for it). */
  readonly exitFile: string | undefined;
  readonly warnings: string[];
}

/**
 * `auto` → native where the cluster has native sidecars, else classic. A run-to-completion pod never
 * gets a classic sidecar: it gets init-only (fetch once, with a warning), unless it names an exit file
 * (`sidekey.io/exit-file`), which the classic sidecar watches so it stops when the app is done.
 */
export function decideMode(
  pod: Pod,
  opts: InjectOptions,
  d: ClusterDefaults,
  workloadKind?: string,
): ModeDecision {
  const want = opts.mode ?? d.mode;
  let mode: ResolvedMode;
  if (want === 'auto') mode = d.nativeSidecars ? 'native' : 'sidecar';
  else if (want === 'native' && d.nativeForbidden) {
    throw new SkError(
      'SK_ERR_ANNOTATION_INVALID',
      `${ANN_MODE}: "native" but this cluster is configured without native sidecars (nativeSidecars: false); use auto or sidecar`,
      { where: ANN_MODE },
    );
  } else mode = want;

  const warnings: string[] = [];
  const done = runsToCompletion(pod, workloadKind);
  if (mode === 'sidecar' && done) {
    if (opts.exitFile !== undefined) return { mode, exitFile: opts.exitFile, warnings };
    const why = d.nativeSidecars ? `${ANN_MODE} is sidecar` : 'this cluster has no native sidecars';
    const fix = d.nativeSidecars
      ? `for rotation, use ${ANN_MODE}: auto (a native sidecar), or set ${ANN_EXIT_FILE} to the file the app writes when it is done`
      : `for rotation, set ${ANN_EXIT_FILE} to the file the app writes when it is done`;
    warnings.push(
      `the pod runs to completion (a Job, or restartPolicy Never/OnFailure) and ${why}: ` +
        `secrets are fetched once by an init container and not rotated, because a classic sidecar would keep the pod running; ${fix}`,
    );
    return { mode: 'init-only', exitFile: undefined, warnings };
  }
  if (opts.exitFile !== undefined) {
    const why =
      mode === 'native'
        ? 'a native sidecar stops by itself after the app'
        : mode === 'init-only'
          ? 'init-only has no sidecar to stop'
          : 'the pod does not run to completion';
    warnings.push(`${ANN_EXIT_FILE}: not used: ${why}`);
  }
  return { mode, exitFile: undefined, warnings };
}

/** Where the exit-file volume is mounted: the directory of the exit file. */
export function exitDir(exitFile: string): string {
  return path.posix.dirname(exitFile);
}

/** The exit file's directory must not clash with the secrets mount or an app container's mounts. */
export function checkExitFile(exitFile: string, mountPath: string, targets: readonly Container[]): void {
  const dir = exitDir(exitFile);
  const inside = (a: string, b: string) => a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
  if (inside(dir, mountPath)) {
    throw new SkError(
      'SK_ERR_ANNOTATION_INVALID',
      `${ANN_EXIT_FILE}: ${dir} overlaps the secrets mount ${mountPath}; use a directory of its own such as /run/sidekey-exit`,
      { where: ANN_EXIT_FILE },
    );
  }
  for (const c of targets) {
    if ((c.volumeMounts ?? []).some((m) => m.mountPath === dir)) {
      throw new SkError(
        'SK_ERR_ANNOTATION_INVALID',
        `${ANN_EXIT_FILE}: container "${c.name}" already mounts a volume at ${dir}; use another directory`,
        { where: ANN_EXIT_FILE },
      );
    }
  }
}

export interface Identity {
  /** Undefined: the agent sets none (OpenShift assigns it, or the pod-level value applies). */
  readonly runAsUser: number | undefined;
  readonly runAsGroup: number | undefined;
  /** The spec's `output.defaultMode` when it must differ from the agent's 0440. */
  readonly defaultMode: string | undefined;
  readonly warnings: string[];
}

const nonZero = (n: unknown) => (typeof n === 'number' && n > 0 ? n : undefined);
const nonNegative = (n: unknown) => (typeof n === 'number' && n >= 0 ? n : undefined);

/**
 * Who the agent runs as, and whether the app can read what it writes.
 *
 * - The agent runs as the first selected app container's user (else the pod's), so files with the
 *   default mode 0440 are the app's own.
 * - OpenShift: no uid or gid of its own (restricted-v2 assigns the pod's uid from the namespace's range
 *   and refuses one outside it); the pod-level values, the SCC's assigned uid and its `fsGroup` apply.
 * - No uid known anywhere (the image's USER decides) and no `fsGroup`: the agent cannot know the app's
 *   uid, so the default mode becomes 0444. The files are readable by any user *of this pod* only: the
 *   memory-backed volume is mounted into this pod's selected containers and nowhere else.
 *
 * A warning names each secret whose mode the app may not be able to read.
 */
export function agentIdentity(
  pod: Pod,
  targets: readonly Container[],
  opts: InjectOptions,
  d: ClusterDefaults,
  secrets: ResolvedSpec['secrets'],
  explicitModes: ReadonlySet<string>,
): Identity {
  const podSc = pod.spec?.securityContext;
  const first = targets[0];
  const fsGroup = nonNegative(podSc?.fsGroup);
  const warnings: string[] = [];

  if (d.openshift) {
    return {
      runAsUser: opts.runAsUser ?? nonZero(first?.securityContext?.runAsUser),
      runAsGroup: opts.runAsGroup ?? nonNegative(first?.securityContext?.runAsGroup),
      defaultMode: undefined,
      warnings,
    };
  }

  const appUid = (c: Container) => nonZero(c.securityContext?.runAsUser) ?? nonZero(podSc?.runAsUser);
  const appGid = (c: Container) =>
    nonNegative(c.securityContext?.runAsGroup) ?? nonNegative(podSc?.runAsGroup);
  const known = first ? appUid(first) : undefined;
  const runAsUser = opts.runAsUser ?? known ?? d.runAsUser;
  const runAsGroup = opts.runAsGroup ?? (first ? appGid(first) : undefined) ?? d.runAsGroup;

  const anyUnknown = targets.some((c) => appUid(c) === undefined);
  const defaultMode =
    anyUnknown && fsGroup === undefined && opts.runAsUser === undefined ? '0444' : undefined;
  for (const c of targets) {
    // A run-as-user annotation on a pod that sets no uid names the image's user: trust it.
    const uid = appUid(c) ?? opts.runAsUser;
    const gid = appGid(c);
    const sameUser = uid !== undefined && uid === runAsUser;
    const sameGroup = fsGroup !== undefined || (gid !== undefined && gid === runAsGroup);
    for (const s of secrets) {
      const mode = explicitModes.has(s.name) || defaultMode === undefined ? s.mode : 0o444;
      const readable = (sameUser && mode & 0o400) || (sameGroup && mode & 0o040) || mode & 0o004;
      if (readable) continue;
      const who =
        uid === undefined
          ? `container "${c.name}" sets no runAsUser (its image decides)`
          : `container "${c.name}" runs as uid ${uid}, the agent as ${runAsUser}`;
      const key = explicitModes.has(s.name) ? secretKey('mode-', s.name) : ANN_RUN_AS_USER;
      warnings.push(
        `${key}: the app may not be able to read "${s.file}" (mode ${mode.toString(8).padStart(4, '0')}): ${who} and the pod has no fsGroup; ` +
          'set runAsUser or fsGroup in the pod, or a mode readable by others',
      );
    }
  }
  return { runAsUser, runAsGroup, defaultMode, warnings };
}
