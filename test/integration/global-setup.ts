import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { scanForCanary } from '../helpers/canary.ts';

/** The integration tier runs the real CLI bundle as a process: build it once before the tier. */
export default function setup(): () => void {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });

  // Everything the CLI processes print is recorded here (test/helpers/cli.ts); the workers inherit
  // the variable. After the whole tier, the teardown fails the run if the canary secret was printed.
  const outputDir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-test-output-'));
  process.env.SIDEKEY_TEST_OUTPUT_DIR = outputDir;
  return () => {
    const hits = scanForCanary(outputDir);
    if (hits.length > 0) {
      const where = hits.map((h) => `  ${h.file}:${h.line} (${h.command})`).join('\n');
      // Keep the directory for inspection; a thrown teardown error fails the run.
      throw new Error(`canary secret found in recorded process output ${hits.length} time(s):\n${where}`);
    }
    rmSync(outputDir, { recursive: true, force: true });
  };
}
