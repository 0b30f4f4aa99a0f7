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
  return createPatch(before, after, kubernetesAware);
}

/**
 * Hooks into rfc6902's diff for what it cannot know about Kubernetes objects:
 * - the build stage shares unchanged subtrees with the input, so the same reference means no change;
 * - lists of named items (containers, env, volumes, mounts) are keyed by name: two items with
 *   different names replace each other whole, instead of a field-by-field rewrite that reads as if an
 *   env var were renamed;
 * - when a list kept its items in order, maybe removing some and appending others (what the build
 *   stage does to env, mounts, volumes and containers), items are compared pairwise in one pass.
 */
function kubernetesAware(input: unknown, output: unknown, ptr: Pointer): Operation[] | undefined {
  if (input === output) return [];
  if (Array.isArray(input) && Array.isArray(output)) return inPlace(input, output, ptr);
  if (isNamed(input) && isNamed(output) && input.name !== output.name && isIndex(ptr)) {
    return [{ op: 'replace', path: ptr.toString(), value: output }];
  }
  return undefined;
}

/**
 * The common shape of the webhook's list edits, diffed in one pass: items kept in their order (the
 * same reference, or the same name), some removed (only items whose name the new list no longer
 * has), new ones appended. Anything else (an insertion in the middle, a reorder, a rename) returns
 * undefined and takes rfc6902's edit-distance search, whose cost grows with the product of the two
 * lengths.
 */
function inPlace(input: unknown[], output: unknown[], ptr: Pointer): Operation[] | undefined {
  const named = input.every(isNamed) && output.every(isNamed);
  const kept = named ? new Set(output.map((o) => (o as { name: string }).name)) : undefined;
  const ops: Operation[] = [];
  let j = 0; // next item of `output` to match
  let k = 0; // index of input[i] in the list as the ops so far leave it
  for (let i = 0; i < input.length; i++) {
    const a = input[i];
    const b = output[j];
    if (j < output.length && (a === b || (isNamed(a) && isNamed(b) && a.name === b.name))) {
      if (a !== b) {
        const at = ptr.add(String(k)).toString();
        for (const op of createPatch(a, b, kubernetesAware)) ops.push(prefixed(op, at));
      }
      j++;
      k++;
    } else if (kept && !kept.has((a as { name: string }).name)) {
      ops.push({ op: 'remove', path: ptr.add(String(k)).toString() });
    } else {
      return undefined;
    }
  }
  const end = ptr.add('-').toString();
  for (; j < output.length; j++) ops.push({ op: 'add', path: end, value: output[j] });
  return ops;
}

function prefixed(op: Operation, at: string): Operation {
  const moved = { ...op, path: at + op.path } as Operation;
  if ('from' in op) (moved as { from: string }).from = at + op.from;
  return moved;
}

function isIndex(ptr: Pointer): boolean {
  return /^\d+$/.test(ptr.tokens[ptr.tokens.length - 1] ?? '');
}

function isNamed(v: unknown): v is { name: unknown } {
  return (
    v !== null &&
    typeof v === 'object' &&
    !Array.isArray(v) &&
    typeof (v as { name?: unknown }).name === 'string'
  );
}
