import { ANN_INJECT, isInjected, isOptedIn } from '../src/annotations.js';
import type { WebhookConfig } from './config.js';
import type { Pod } from './k8s.js';

/** Why a pod was left alone. Also the `reason` label of the skip metric, so the set is closed. */
export type SkipReason =
  | 'not-create'
  | 'not-a-pod'
  | 'not-opted-in'
  | 'opt-in-value'
  | 'already-injected'
  | 'excluded-namespace'
  | 'windows';

/** Human text for each reason (stderr of `sidekey inject`, logs). */
export const SKIP_TEXT: Readonly<Record<SkipReason, string>> = Object.freeze({
  'not-create': 'only CREATE is mutated, never UPDATE',
  'not-a-pod': 'the object is not a Pod',
  'not-opted-in': 'not opted in (sidekey.io/inject is not "true")',
  'opt-in-value':
    'sidekey.io/inject is set, but not to "true" (only the exact lowercase string "true" opts in); write sidekey.io/inject: "true"',
  'already-injected': 'already injected (sidekey.io/status: injected)',
  'excluded-namespace': 'the namespace is excluded from injection',
  windows: 'Windows pods are skipped: a memory-backed emptyDir (tmpfs) is not available there',
});

export type InjectDecision = { inject: true } | { inject: false; reason: SkipReason };

export interface ShouldInjectInput {
  /** Admission operation; `sidekey inject` passes CREATE. */
  readonly operation: string;
  /** The request namespace (a pod being created often has no metadata.namespace yet). */
  readonly namespace: string | undefined;
  readonly pod: Pod;
  /**
   * The kind of the workload whose pod template this is (`sidekey inject`/`explain`): a Job's or
   * CronJob's pods run to completion, though the template carries no owner reference yet.
   */
  readonly workloadKind?: string;
}

/**
 * Stage 1: whether to mutate at all. Pure. Checks run from cheapest and most common (not opted in) to
 * rarest, and the first that applies is the reason.
 */
export function shouldInject(
  input: ShouldInjectInput,
  config: Pick<WebhookConfig, 'excluded'>,
): InjectDecision {
  if (input.operation !== 'CREATE') return { inject: false, reason: 'not-create' };
  const ann = input.pod.metadata?.annotations;
  if (!isOptedIn(ann)) {
    // "True", "yes", "1": the user meant to opt in; say so instead of a silent "not opted in".
    const v = ann?.[ANN_INJECT];
    if (typeof v === 'string' && looksLikeYes(v)) return { inject: false, reason: 'opt-in-value' };
    return { inject: false, reason: 'not-opted-in' };
  }
  if (isInjected(ann)) return { inject: false, reason: 'already-injected' };
  const ns = input.namespace ?? input.pod.metadata?.namespace;
  if (ns !== undefined && config.excluded.includes(ns))
    return { inject: false, reason: 'excluded-namespace' };
  const spec = input.pod.spec;
  const selector = spec?.nodeSelector;
  if (
    spec?.os?.name === 'windows' ||
    selector?.['kubernetes.io/os'] === 'windows' ||
    selector?.['beta.kubernetes.io/os'] === 'windows'
  ) {
    return { inject: false, reason: 'windows' };
  }
  return { inject: true };
}

/** A value that means yes to a person but is not the exact `"true"`. */
export function looksLikeYes(v: string): boolean {
  return ['true', 'yes', 'y', '1', 'on', 'enabled', 'enable'].includes(v.trim().toLowerCase());
}

/** Skips the user gets told about at admission (kubectl prints warnings): they asked for injection. */
export const WARNED_SKIPS: ReadonlySet<SkipReason> = new Set<SkipReason>(['windows', 'opt-in-value']);
