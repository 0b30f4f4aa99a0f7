#!/usr/bin/env node
// Entry point: runs the esbuild bundle (built by `npm install` through the `prepare` script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bundle = fileURLToPath(new URL('../dist/sidekey.js', import.meta.url));
if (!existsSync(bundle)) {
  process.stderr.write('SK_ERR_INTERNAL: dist/sidekey.js is missing; run `npm run build` first\n');
  process.exit(1);
}
await import(bundle);
