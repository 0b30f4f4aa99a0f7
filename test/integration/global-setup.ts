import { execFileSync } from 'node:child_process';

/** The integration tier runs the real CLI bundle as a process: build it once before the tier. */
export default function setup(): void {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
}
