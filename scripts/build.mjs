// Bundles the CLI (and through it the agent and webhook) with esbuild into dist/, so that the agent
// starts without resolving hundreds of node_modules files. Commands and providers are loaded with
// dynamic import(), and code splitting keeps each in its own chunk: `sidekey agent` with file: refs
// never loads the AWS SDK or the Kubernetes client.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { analyzeMetafile, build } from 'esbuild';

/**
 * zod re-exports its 40-odd translated error-message locales (`z.locales.*`, ~250 KB of the agent's
 * largest chunk) although only English is ever used: zod itself installs `en` at import, and sidekey
 * never calls `z.config({ localeError })`. Keep only `en`; esbuild warns if code reads another locale.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      /[\\/]node_modules[\\/]zod[\\/]/.test(args.importer)
        ? { path: path.join(path.dirname(args.importer), '../locales/index.js'), namespace: 'zod-locales' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(path.join(path.dirname(args.path), 'en.js'))};`,
      resolveDir: path.dirname(args.path),
      loader: 'js',
    }));
  },
};

/**
 * Node built-ins imported by ES modules are loaded with require() instead. An `import` of a built-in
 * makes Node build its ES module facade, which reads every export, and that runs the lazy getters
 * Node hides its costly parts behind: `node:http` loads undici (fetch, WebSocket), `node:crypto`
 * Web Crypto, `node:fs` its Utf8Stream, … (~40–60 ms of CPU for the agent on Node 24, measured with
 * perf stat). require() returns the module object without touching them, and esbuild's interop reads
 * each export only when the code uses it.
 */
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
const builtinsByRequire = {
  name: 'builtins-by-require',
  setup(b) {
    b.onResolve({ filter: /^[a-z_:/]+$/ }, (args) =>
      builtins.has(args.path) && (args.kind === 'import-statement' || args.kind === 'dynamic-import')
        ? { path: args.path, namespace: 'builtin-require' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'builtin-require' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

const outdir = new URL('../dist/', import.meta.url).pathname;

/** `sidekey version`: the package version, and the commit (SIDEKEY_COMMIT, else git, else unknown). */
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
function commit() {
  if (process.env.SIDEKEY_COMMIT) return process.env.SIDEKEY_COMMIT;
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: new URL('..', import.meta.url).pathname,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}

// No clean by default: several test runs may build at once, and removing dist/ under a running CLI
// breaks it. Chunk names carry content hashes, so stale chunks are harmless; `--clean` for releases.
if (process.argv.includes('--clean')) await rm(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: { sidekey: 'cli/main.ts' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  // Whitespace and syntax only (names are kept, so error messages and stack frames read the same):
  // V8 keeps each module's source text on the heap, and the agent loads ~1.5 MB of it; this takes
  // ~1.2 MiB off the agent's resident memory (docs/agent.md, "Start-up and memory"). The source map maps back.
  minifyWhitespace: true,
  minifySyntax: true,
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [zodEnglishOnly, builtinsByRequire],
  // tr46/whatwg-url (under @kubernetes/client-node's fetch) require('punycode'): Node's built-in of that
  // name is deprecated (DEP0040) and, required from dist/ rather than node_modules, prints a warning on
  // stderr from Node 22 on. Bundle the npm package instead (a direct dependency for that reason).
  alias: { punycode: 'punycode/' },
  define: {
    __SIDEKEY_VERSION__: JSON.stringify(pkg.version),
    __SIDEKEY_COMMIT__: JSON.stringify(commit()),
  },
  // Some CommonJS dependencies call require() for Node built-ins; give the ESM bundle a require.
  banner: {
    js: "import { createRequire as __skCreateRequire } from 'node:module'; const require = __skCreateRequire(import.meta.url);",
  },
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(
  `built dist/ (${Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js')).length} chunks, ${(bytes / 1024 / 1024).toFixed(1)} MiB)`,
);
// `node scripts/build.mjs --analyze`: what each chunk is made of (e.g. what the agent's chunks pull in).
if (process.argv.includes('--analyze')) console.log(await analyzeMetafile(result.metafile));
