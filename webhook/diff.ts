import { createPatch, type Operation } from 'rfc6902';
import type { Pointer } from 'rfc6902/pointer.js';

export type { Operation };

/**
 * Stage 5: the RFC 6902 patch turning `before` into `after`. The patch is computed from the two whole
 * states (rfc6902's diff, with an edit-distance diff of arrays), not assembled from per-feature ops, so
 * each op applies to the state left by the ops before it: a pod without volumes gets one
 * `add /spec/volumes`, never two, and an inserted init container is one `add …/initContainers/0`.
 */
export function diffPatch(before: unknown, after: unknown): Operation[] {
  return createPatch(before, after, namedItems);
}

/**
 * Kubernetes lists of named items (containers, env, volumes, mounts) are keyed by name: when the
 * edit-distance diff pairs two items with different names, one replaces the other whole, instead of a
 * field-by-field rewrite that reads as if an env var were renamed.
 */
function namedItems(input: unknown, output: unknown, ptr: Pointer): Operation[] | undefined {
  // The build stage shares unchanged subtrees with the input: same reference, nothing to compare.
  if (input === output) return [];
  if (
    isNamed(input) &&
    isNamed(output) &&
    input.name !== output.name &&
    /^\d+$/.test(ptr.tokens[ptr.tokens.length - 1] ?? '')
  ) {
    return [{ op: 'replace', path: ptr.toString(), value: output }];
  }
  return undefined;
}

function isNamed(v: unknown): v is { name: unknown } {
  return (
    v !== null &&
    typeof v === 'object' &&
    !Array.isArray(v) &&
    typeof (v as { name?: unknown }).name === 'string'
  );
}
