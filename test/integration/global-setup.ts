import { execFileSync } from 'node:child_process';
import { canaryGlobalSetup } from '../helpers/canary.ts';

/** The integration tier runs the real CLI bundle as a process: build it once before the tier. */
export default function setup(): () => void {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  // Everything the CLI processes print is recorded (test/helpers/cli.ts); after the whole tier, the
  // teardown fails the run if the canary secret was printed.
  return canaryGlobalSetup();
}
