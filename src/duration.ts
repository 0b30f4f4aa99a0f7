import { SkError } from './errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_RE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART_RE = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/**
 * Parse a Go-style duration (`30s`, `5m`, `1h30m`, `250ms`, `1d`) or `0` into milliseconds.
 * A bare number other than 0 is refused: `30` could mean seconds or minutes, and guessing is worse
 * than asking.
 */
export function parseDuration(input: string | number, where: string): number {
  if (typeof input === 'number') {
    if (input === 0) return 0;
    throw new SkError('SK_ERR_DURATION_INVALID', `${where}: "${input}" has no unit (use e.g. 30s, 5m, 1h)`, {
      where,
    });
  }
  const s = input.trim();
  if (s === '0') return 0;
  if (!DURATION_RE.test(s)) {
    throw new SkError(
      'SK_ERR_DURATION_INVALID',
      `${where}: "${truncate(s)}" is not a duration like 30s, 5m, 1h30m or 0`,
      {
        where,
      },
    );
  }
  let total = 0;
  for (const m of s.matchAll(PART_RE)) total += Number(m[1]) * (UNIT_MS[m[2]!] ?? 0);
  // a very long digit string parses to Infinity, which timers would treat as 0
  if (!Number.isSafeInteger(Math.round(total))) {
    throw new SkError('SK_ERR_DURATION_INVALID', `${where}: "${truncate(s)}" is too long a duration`, {
      where,
    });
  }
  return Math.round(total);
}

/** Format milliseconds back into the shortest Go-style duration, for logs and status output. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = Math.round(ms);
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      parts.push(`${n}${unit}`);
      rest -= n * size;
    }
  }
  return parts.join('');
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
