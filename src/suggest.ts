import { distance } from 'fastest-levenshtein';

/**
 * "Did you mean" for a mistyped key: the candidate closest by edit distance, when it is close enough
 * to be a typo (at most a third of the word's length, and at least one edit allowed); undefined
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
