import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CANARY } from './cli.ts';

/** A place where the canary secret showed up in recorded output. */
export interface CanaryHit {
  file: string;
  line: number;
  /** The recorded command (first line of the log), never the offending line itself. */
  command: string;
}

/**
 * Scan every recorded output file in `dir` for the canary secret. Returns where it was found; the
 * offending text is not returned, so a failure report does not print the canary either.
 */
export function scanForCanary(dir: string, needle: string = CANARY): CanaryHit[] {
  if (!existsSync(dir)) return [];
  const hits: CanaryHit[] = [];
  for (const name of readdirSync(dir).sort()) {
    const file = path.join(dir, name);
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((l, i) => {
      if (l.includes(needle)) hits.push({ file, line: i + 1, command: lines[0] ?? '' });
    });
  }
  return hits;
}
