import { SkError } from '../src/errors.js';
import { isRecord } from '../src/is-record.js';
import type { SpecInput } from '../src/spec.js';
import { buildPod } from './build-pod.js';
import type { ClusterDefaults } from './defaults.js';
import { diffPatch, type Operation } from './diff.js';
import type { Pod } from './k8s.js';
import { checkPatchLimit, checkPlanLimits, checkPodLimits } from './limits.js';
import { type ShouldInjectInput, type SkipReason, shouldInject } from './should-inject.js';
import { parseAndValidate, type ValidateDeps } from './validate.js';

/** Everything the pipeline needs besides the pod; built once per server (or CLI run). */
export interface PipelineContext extends ValidateDeps {
  readonly defaults: ClusterDefaults;
  readonly excluded: readonly string[];
}

/** The result of running the pipeline on one pod. */
export type Outcome =
  | { readonly kind: 'skip'; readonly reason: SkipReason }
  | {
      readonly kind: 'inject';
      readonly pod: Pod;
      readonly patch: Operation[];
      /** `patch` as JSON, the bytes sent (at most LIMITS.patchBytes). */
      readonly patchJson: string;
      readonly mode: 'native' | 'sidecar' | 'init-only';
      /** Admission warnings: what the pod gets differs from what it may expect (Jobs, file modes). */
      readonly warnings: readonly string[];
      /** The agent's spec (refs and settings, never values). */
      readonly spec: SpecInput;
    }
  | { readonly kind: 'invalid'; readonly error: SkError };

/**
 * The admission pipeline: should-inject → defaults → parse + validate → limits → build the pod → diff
 * (→ patch size limit).
 * Never throws: a user mistake is `invalid` with an SkError naming the annotation; a bug is `invalid`
 * with SK_ERR_INTERNAL (the HTTP layer turns both into a denial).
 */
export function mutatePod(input: ShouldInjectInput, ctx: PipelineContext): Outcome {
  try {
    if (!isRecord(input.pod)) return { kind: 'skip', reason: 'not-a-pod' };
    const decision = shouldInject(input, ctx);
    if (!decision.inject) return { kind: 'skip', reason: decision.reason };
    if (!isRecord(input.pod.spec) || !Array.isArray(input.pod.spec.containers)) {
      throw new SkError('SK_ERR_MANIFEST_INVALID', 'spec.containers: the pod has no containers list', {
        where: 'spec.containers',
      });
    }
    checkPodShape(input.pod.spec);
    checkPodLimits(input.pod);
    const plan = parseAndValidate(
      input.pod,
      input.namespace ?? input.pod.metadata?.namespace,
      ctx.defaults,
      ctx,
      input.workloadKind,
    );
    checkPlanLimits(plan);
    const pod = buildPod(input.pod, plan, ctx.defaults);
    const patch = diffPatch(input.pod, pod);
    const patchJson = JSON.stringify(patch);
    checkPatchLimit(Buffer.byteLength(patchJson));
    return {
      kind: 'inject',
      pod,
      patch,
      patchJson,
      mode: plan.mode,
      warnings: plan.warnings,
      spec: plan.spec,
    };
  } catch (e) {
    // A bug: its message may quote the pod (a JSON or type error naming a value), so only its type.
    if (e instanceof SkError) return { kind: 'invalid', error: e };
    const type = e instanceof Error ? e.name : typeof e;
    return {
      kind: 'invalid',
      error: new SkError(
        'SK_ERR_INTERNAL',
        `while injecting: failed unexpectedly (${type}); please report it`,
        {
          cause: e,
        },
      ),
    };
  }
}

/**
 * The lists the build stage reads and extends, checked for shape: a `null` or a number where a
 * container, env entry, mount or volume belongs is the manifest's mistake (SK_ERR_MANIFEST_INVALID
 * naming the field), not a crash of the build stage.
 */
function checkPodShape(spec: Record<string, unknown>): void {
  const bad = (where: string, what: string): never => {
    throw new SkError('SK_ERR_MANIFEST_INVALID', `${where}: ${what}`, { where });
  };
  const list = (v: unknown, where: string, needs: readonly string[]): Record<string, unknown>[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) return bad(where, 'is not a list');
    v.forEach((x, i) => {
      if (!isRecord(x)) bad(`${where}[${i}]`, 'is not an object');
      for (const k of needs) {
        if (typeof (x as Record<string, unknown>)[k] !== 'string' || (x as Record<string, unknown>)[k] === '')
          bad(`${where}[${i}].${k}`, 'is missing or not a string');
      }
    });
    return v as Record<string, unknown>[];
  };
  list(spec.volumes, 'spec.volumes', ['name']);
  for (const field of ['containers', 'initContainers'] as const) {
    list(spec[field], `spec.${field}`, ['name']).forEach((c, i) => {
      list(c.env, `spec.${field}[${i}].env`, ['name']);
      list(c.volumeMounts, `spec.${field}[${i}].volumeMounts`, ['name', 'mountPath']);
    });
  }
}
