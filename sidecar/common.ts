import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import YAML from 'yaml';
import { EXIT_INVALID_INPUT, EXIT_RUNTIME, isSkError, SkError } from '../src/errors.js';
import { loadSpecFile, loadSpecJson } from '../src/load.js';
import { createLogger, type Logger } from '../src/log.js';
import { registryFor } from '../src/providers/lazy.js';
import type { ProviderRegistry } from '../src/providers/registry.js';
import type { ResolvedSpec } from '../src/spec.js';

/** Shared plumbing of `sidekey agent`, `sidekey dev` and `sidekey run`. */

/** The environment variable the webhook puts the spec (JSON) in. */
export const SPEC_ENV = 'SIDEKEY_SPEC';

export interface SpecSource {
  /** `-c <file>`: a YAML/JSON spec file. */
  config?: string | undefined;
  /** Fall back to `SIDEKEY_SPEC` when no file is given (the agent). */
  fromEnv?: boolean;
  /** File used when neither is given (`sidekey dev`, `sidekey run`: `./sidekey.yaml`). */
  defaultFile?: string;
}

/** Load and resolve the spec the way every command does: `-c` file, else `SIDEKEY_SPEC`, else default. */
export async function loadCommandSpec(
  src: SpecSource,
  registry?: ProviderRegistry,
): Promise<{ spec: ResolvedSpec; registry: ProviderRegistry; source: string }> {
  const json = src.fromEnv ? process.env[SPEC_ENV] : undefined;
  if (src.config === undefined && json !== undefined && json.trim() !== '') {
    const reg = registry ?? (await registryFor(providersInJson(json)));
    return { spec: loadSpecJson(json, { registry: reg, source: SPEC_ENV }), registry: reg, source: SPEC_ENV };
  }
  const file = src.config ?? src.defaultFile;
  if (file === undefined) {
    throw new SkError('SK_ERR_CLI_USAGE', `no spec: set ${SPEC_ENV} (JSON) or pass -c <file>`, {
      where: SPEC_ENV,
    });
  }
  const reg = registry ?? (await registryFor(await providersInFile(file)));
  return { spec: loadSpecFile(file, { registry: reg }), registry: reg, source: file };
}

/**
 * The provider names a spec's refs use, read cheaply before the real load, so that only those
 * providers are imported. Anything unexpected yields `['?']`, which loads every provider; the real
 * load then reports the problem with its proper error.
 */
export function providersIn(doc: unknown): string[] {
  const secrets = (doc as { secrets?: unknown } | null)?.secrets;
  if (secrets === null || typeof secrets !== 'object') return ['?'];
  const names: string[] = [];
  for (const s of Object.values(secrets as Record<string, unknown>)) {
    const ref = (s as { ref?: unknown } | null)?.ref;
    const m = typeof ref === 'string' ? /^\s*([a-z][a-z0-9-]*):/.exec(ref) : null;
    names.push(m ? m[1]! : '?');
  }
  return names;
}

function providersInJson(json: string): string[] {
  try {
    return providersIn(JSON.parse(json));
  } catch {
    return ['?'];
  }
}

async function providersInFile(file: string): Promise<string[]> {
  try {
    const text = await readFile(file, 'utf8');
    return providersIn(YAML.parse(text));
  } catch {
    return ['?'];
  }
}

/** A copy of the spec with another output directory (`-o`); the spec stays frozen. */
export function withOutputDir(spec: ResolvedSpec, dir: string): ResolvedSpec {
  return Object.freeze({ ...spec, output: Object.freeze({ ...spec.output, dir }) });
}

/** The one line printed for a failure: `SK_ERR_X: cause` (never a stack, never a value). */
export function errorLine(e: unknown): string {
  if (isSkError(e)) return `${e.code}: ${e.message}`;
  const msg = e instanceof Error ? e.message : String(e);
  return `SK_ERR_INTERNAL: ${msg.split('\n')[0]}`;
}

/** Exit code for a failure: 2 for the user's input, 1 at run time. */
export function exitCodeFor(e: unknown): number {
  return isSkError(e) && e.kind === 'input' ? EXIT_INVALID_INPUT : EXIT_RUNTIME;
}

/** Print the one-line error to stderr and return its exit code. */
export function reportError(e: unknown): number {
  process.stderr.write(`${errorLine(e)}\n`);
  if (process.env.SIDEKEY_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return exitCodeFor(e);
}

/**
 * A JSON logger whose lines are held back until {@link BufferedLog.flush}; {@link BufferedLog.drop}
 * forgets them. `agent --once` uses it so that a failure prints exactly one line, and a success prints
 * the whole log.
 */
export interface BufferedLog {
  log: Logger;
  flush(): void;
  drop(): void;
}

export function bufferedLogger(): BufferedLog {
  let chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return {
    log: createLogger({ destination: sink }),
    flush() {
      if (chunks.length > 0) process.stderr.write(chunks.join(''));
      chunks = [];
    },
    drop() {
      chunks = [];
    },
  };
}

/** Resolves with the first of the given signals; the handlers stay installed (a second signal is ignored). */
export function onceSignal(signals: readonly NodeJS.Signals[]): {
  promise: Promise<NodeJS.Signals>;
  dispose(): void;
} {
  let resolve!: (s: NodeJS.Signals) => void;
  const promise = new Promise<NodeJS.Signals>((r) => {
    resolve = r;
  });
  const handlers = signals.map((s) => {
    const h = () => resolve(s);
    process.on(s, h);
    return [s, h] as const;
  });
  return {
    promise,
    dispose() {
      for (const [s, h] of handlers) process.off(s, h);
    },
  };
}

/** Flush what is pending on stdout/stderr (waiting at most 500 ms, e.g. for a stuck pipe), then exit. */
export async function exitProcess(code: number): Promise<never> {
  const drained = Promise.all(
    [process.stdout, process.stderr].map(
      (s) =>
        new Promise<void>((r) => {
          if (s.writableLength === 0 || s.destroyed) return r();
          s.once('error', () => r());
          s.write('', () => r());
        }),
    ),
  );
  await Promise.race([drained, new Promise((r) => setTimeout(r, 500).unref())]);
  process.exit(code);
}
