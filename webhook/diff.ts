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
 * - when a named list kept its items in place (same names at the same positions, maybe with items
 *   appended), items are compared pairwise; the edit-distance search, which compares every item
 *   with every other, is only needed when items were inserted or removed in the middle.
 */
function kubernetesAware(input: unknown, output: unknown, ptr: Pointer): Operation[] | undefined {
  if (input === output) return [];
  if (Array.isArray(input) && Array.isArray(output)) return inPlace(input, output, ptr);
  if (isNamed(input) && isNamed(output) && input.name !== output.name && isIndex(ptr)) {
    return [{ op: 'replace', path: ptr.toString(), value: output }];
  }
  return undefined;
}

function inPlace(input: unknown[], output: unknown[], ptr: Pointer): Operation[] | undefined {
  if (output.length < input.length) return undefined;
  for (let i = 0; i < input.length; i++) {
    const a = input[i];
    const b = output[i];
    if (a !== b && !(isNamed(a) && isNamed(b) && a.name === b.name)) return undefined;
  }
  const ops: Operation[] = [];
  for (let i = 0; i < input.length; i++) {
    if (input[i] === output[i]) continue;
    const at = ptr.add(String(i)).toString();
    for (const op of createPatch(input[i], output[i], kubernetesAware)) ops.push(prefixed(op, at));
  }
  const end = ptr.add('-').toString();
  for (let i = input.length; i < output.length; i++) ops.push({ op: 'add', path: end, value: output[i] });
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
