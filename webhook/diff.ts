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
 *   stage does to env, mounts, volumes and containers), items are compared pairwise in one pass;
 * - any other edit of a list of uniquely named items (an item moved, one inserted in the middle) is
 *   diffed by name: the patch removes, adds or edits single items at their index and never replaces
 *   the list, so its size follows the change, not the pod (see {@link keyed}).
 */
function kubernetesAware(input: unknown, output: unknown, ptr: Pointer): Operation[] | undefined {
  if (input === output) return [];
  if (Array.isArray(input) && Array.isArray(output))
    return inPlace(input, output, ptr) ?? keyed(input, output, ptr) ?? bounded(input, output, ptr);
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

/**
 * A list of named items, diffed by name in O(n log n): the items that keep their relative order (the
 * longest run of them) stay and are diffed pairwise; the others are removed (highest index first) and
 * the new or moved ones added at their final index. A repeated name (env may repeat one, mounts repeat
 * a volume's) is matched by occurrence: the second `A` of the input with the second of the output.
 * Undefined (rfc6902's edit distance, bounded, then) for a list with unnamed items.
 */
function keyed(input: unknown[], output: unknown[], ptr: Pointer): Operation[] | undefined {
  const keys = (list: unknown[]): string[] | undefined => {
    const count = new Map<string, number>();
    const out: string[] = [];
    for (const x of list) {
      if (!isNamed(x)) return undefined;
      const n = count.get(x.name as string) ?? 0;
      count.set(x.name as string, n + 1);
      out.push(`${n}\0${x.name as string}`);
    }
    return out;
  };
  const inKeys = keys(input);
  const outKeys = keys(output);
  if (!inKeys || !outKeys) return undefined;
  const at = new Map<string, number>(outKeys.map((k, j) => [k, j]));
  const target = inKeys.map((k) => at.get(k) ?? -1); // output index of each input item, -1 when gone
  const stay = longestIncreasing(target);
  const ops: Operation[] = [];
  for (let i = input.length - 1; i >= 0; i--) {
    if (!stay.has(i)) ops.push({ op: 'remove', path: ptr.add(String(i)).toString() });
  }
  const kept = new Map<number, unknown>(); // output index → the input item staying there
  for (const i of stay) kept.set(target[i]!, input[i]);
  for (let j = 0; j < output.length; j++) {
    const b = output[j];
    if (!kept.has(j)) {
      ops.push({ op: 'add', path: ptr.add(String(j)).toString(), value: b });
      continue;
    }
    const a = kept.get(j);
    if (a === b) continue;
    const here = ptr.add(String(j)).toString();
    for (const op of createPatch(a, b, kubernetesAware)) ops.push(prefixed(op, here));
  }
  return ops;
}

/** Indices of a longest strictly increasing subsequence of `xs`, ignoring negative entries. */
function longestIncreasing(xs: readonly number[]): Set<number> {
  const tails: number[] = []; // tails[k]: index into xs of the smallest tail of a run of length k+1
  const prev: number[] = new Array(xs.length).fill(-1);
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    if (x < 0) continue;
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[tails[mid]!]! < x) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[i] = tails[lo - 1]!;
    tails[lo] = i;
  }
  const out = new Set<number>();
  for (let i = tails.length > 0 ? tails[tails.length - 1]! : -1; i >= 0; i = prev[i]!) out.add(i);
  return out;
}

/** Above this many cells (input × output length) rfc6902's edit-distance table is not built. */
const EDIT_DISTANCE_CELLS = 40_000;

/**
 * The last resort for a list neither in place nor named: rfc6902's edit-distance search while the
 * lists are small; above {@link EDIT_DISTANCE_CELLS} (its time and memory grow with the product of
 * the lengths) one `replace` of the list, whose size is bounded by the pod's.
 */
function bounded(input: unknown[], output: unknown[], ptr: Pointer): Operation[] | undefined {
  if (input.length * output.length <= EDIT_DISTANCE_CELLS) return undefined;
  return [{ op: 'replace', path: ptr.toString(), value: output }];
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
