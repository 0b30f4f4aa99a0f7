import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * `sidekey agent --probe`: the native sidecar's startup probe. It runs inside the agent's container
 * (often every second during start-up), so it is kept light: it reads only `output.dir` from the spec,
 * without validating the spec or loading providers — the agent next to it has done that already.
 * Exit 0 once `<output.dir>/..data` exists (the writer swaps it in last, after a complete write).
 */

/** The in-cluster output dir when the spec has none; equals `DEFAULTS.outputDir` in src/spec.ts. */
export const DEFAULT_OUTPUT_DIR = '/run/sidekey';

export interface ProbeOptions {
  config?: string | undefined;
}

/** The output directory the agent writes to, resolved the way the spec loader resolves it. */
export async function probeOutputDir(
  opts: ProbeOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  let doc: unknown;
  let baseDir: string;
  if (opts.config !== undefined) {
    const { default: YAML } = await import('yaml');
    doc = YAML.parse(readFileSync(opts.config, 'utf8'));
    baseDir = path.dirname(path.resolve(opts.config));
  } else if (env.SIDEKEY_SPEC) {
    doc = JSON.parse(env.SIDEKEY_SPEC);
    baseDir = process.cwd();
  } else {
    throw new Error('no spec: set SIDEKEY_SPEC (JSON) or pass -c <file>');
  }
  const dir = (doc as { output?: { dir?: unknown } } | null)?.output?.dir;
  return path.resolve(baseDir, typeof dir === 'string' ? dir : DEFAULT_OUTPUT_DIR);
}

/** Resolves with the exit code: 0 ready, 1 not yet, 2 when the spec cannot be read. */
export async function runProbe(opts: ProbeOptions): Promise<number> {
  let dir: string;
  try {
    dir = await probeOutputDir(opts);
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    process.stderr.write(`SK_ERR_SPEC_PARSE: probe: ${msg}\n`);
    return 2;
  }
  if (existsSync(path.join(dir, '..data'))) return 0;
  process.stderr.write(`not ready: no complete write in ${dir} yet\n`);
  return 1;
}
