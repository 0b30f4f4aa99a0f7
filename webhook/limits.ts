import { SkError } from '../src/errors.js';
import type { Pod } from './k8s.js';
import type { Plan } from './validate.js';

/**
 * The webhook's limits per pod. They bound the work and the memory of one admission review, so that
 * the largest accepted pod × `maxConcurrentReviews` fits the chart's memory limit (measured by
 * test/integration/webhook-limits.test.ts, stated in docs/webhook.md). A pod above one is denied with
 * SK_ERR_POD_TOO_LARGE naming the limit; the checks run before the expensive stages (build, diff).
 */
export const LIMITS = Object.freeze({
  /** Secrets (`sidekey.io/secret-*`, after cluster defaults) per pod. */
  secrets: 256,
  /** Containers plus init containers in the pod as submitted. */
  containers: 64,
  /** `*_FILE` env entries the webhook adds: secrets with `sidekey.io/env-*` × containers that get them. */
  envEntries: 2048,
  /** The JSON patch, in bytes of JSON (before base64). */
  patchBytes: 1024 * 1024,
});

function tooLarge(what: string, where: string, fix: string): never {
  throw new SkError('SK_ERR_POD_TOO_LARGE', `${where}: ${what}; ${fix}`, { where });
}

/** Before parsing annotations: the pod's own size. */
export function checkPodLimits(pod: Pod): void {
  const n = (pod.spec?.containers?.length ?? 0) + (pod.spec?.initContainers?.length ?? 0);
  if (n > LIMITS.containers) {
    tooLarge(
      `${n} containers (app + init), the webhook injects at most ${LIMITS.containers}`,
      'spec.containers',
      'split the pod',
    );
  }
}

/** After validation, before building: what the injection would add. */
export function checkPlanLimits(plan: Pick<Plan, 'resolved' | 'envFiles' | 'targets'>): void {
  const secrets = plan.resolved.secrets.length;
  if (secrets > LIMITS.secrets) {
    tooLarge(
      `${secrets} secrets, the webhook injects at most ${LIMITS.secrets} per pod`,
      'sidekey.io/secret-*',
      'split them over several pods, or render several values into one file with a template',
    );
  }
  const entries = plan.envFiles.length * plan.targets.length;
  if (entries > LIMITS.envEntries) {
    tooLarge(
      `${plan.envFiles.length} secrets with env-* × ${plan.targets.length} containers = ${entries} *_FILE env entries, at most ${LIMITS.envEntries}`,
      'sidekey.io/env-*',
      'limit the containers with sidekey.io/containers, or drop env-* where the app takes the file path itself',
    );
  }
}

/** After the diff: the patch as sent (JSON bytes). */
export function checkPatchLimit(bytes: number): void {
  if (bytes > LIMITS.patchBytes) {
    tooLarge(
      `the patch would be ${bytes} bytes, at most ${LIMITS.patchBytes}`,
      'metadata.annotations',
      'inject fewer secrets or into fewer containers (sidekey.io/containers)',
    );
  }
}
