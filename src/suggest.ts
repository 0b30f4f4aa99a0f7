import { distance as levenshtein } from 'fastest-levenshtein';

/**
 * Edit distance for typos: Levenshtein (fastest-levenshtein), except that one swap of two adjacent
 * letters (`secert` → `secret`, `moed` → `mode`) counts as one edit, as people make it.
 */
export function distance(a: string, b: string): number {
  if (a.length === b.length && a !== b) {
    let i = 0;
    while (a[i] === b[i]) i++;
    if (a[i] === b[i + 1] && a[i + 1] === b[i] && a.slice(i + 2) === b.slice(i + 2)) return 1;
  }
  return levenshtein(a, b);
}

/**
 * "Did you mean" for a mistyped key: the candidate closest by {@link distance}, when it is close
 * enough to be a typo (at most a third of the word's length, and at least one edit allowed); undefined
 * otherwise. Ties go to the first candidate, so callers list the likeliest first.
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const limit = Math.max(1, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = distance(word, c);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return bestD <= limit ? best : undefined;
}
