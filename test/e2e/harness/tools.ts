import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where scripts/tools/ensure.sh puts the real servers and tools. */
export const toolsDir = process.env.SIDEKEY_TOOLS ?? join(homedir(), '.cache', 'sidekey-tools');

/**
 * Path of a tool in $SIDEKEY_TOOLS/bin. Throws (never skips) when it is missing: `npm run test:e2e`
 * installs it first through `scripts/tools/ensure.sh e2e`.
 */
export function tool(name: string): string {
  const path = join(toolsDir, 'bin', name);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(
      `e2e: ${path} is missing; run \`bash scripts/tools/ensure.sh e2e\` (npm run test:e2e does)`,
    );
  }
  return path;
}
