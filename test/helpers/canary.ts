import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
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

/**
 * A vitest globalSetup body: makes a fresh output-recording directory for the tier (exported as
 * `SIDEKEY_TEST_OUTPUT_DIR`, inherited by the workers) and returns the teardown that fails the run
 * — by throwing — when the canary shows up in anything recorded. Used by the integration tier's
 * global-setup.ts; another tier can list `test/helpers/canary-setup.ts` as a globalSetup.
 */
export function canaryGlobalSetup(): () => void {
  const outputDir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-test-output-'));
  process.env.SIDEKEY_TEST_OUTPUT_DIR = outputDir;
  return () => {
    const hits = scanForCanary(outputDir);
    if (hits.length > 0) {
      const where = hits.map((h) => `  ${h.file}:${h.line} (${h.command})`).join('\n');
      // Keep the directory for inspection.
      throw new Error(`canary secret found in recorded process output ${hits.length} time(s):\n${where}`);
    }
    rmSync(outputDir, { recursive: true, force: true });
  };
}
