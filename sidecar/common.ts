import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
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
    const { value, registry: reg } = await withProviders(json, registry, (r) =>
      loadSpecJson(json, { registry: r, source: SPEC_ENV }),
    );
    return { spec: value, registry: reg, source: SPEC_ENV };
  }
  const file = src.config ?? src.defaultFile;
  if (file === undefined) {
    throw new SkError('SK_ERR_CLI_USAGE', `no spec: set ${SPEC_ENV} (JSON) or pass -c <file>`, {
      where: SPEC_ENV,
    });
  }
  const text = await readFile(file, 'utf8').catch(() => '');
  const { value, registry: reg } = await withProviders(text, registry, (r) =>
    loadSpecFile(file, { registry: r }),
  );
  return { spec: value, registry: reg, source: file };
}

/**
 * Run `load` with a registry of only the providers the spec text names (so a `file:`-only agent never
 * imports the cloud clients). The scan is a cheap pattern match, not a parse; if it missed a provider,
 * the load fails with SK_ERR_PROVIDER_UNKNOWN and is retried with every provider, so the error a user
 * sees (if any) is the one the full registry gives.
 */
async function withProviders<T>(
  text: string,
  given: ProviderRegistry | undefined,
  load: (r: ProviderRegistry) => T,
): Promise<{ value: T; registry: ProviderRegistry }> {
  if (given) return { value: load(given), registry: given };
  const partial = await registryFor(providersInText(text));
  try {
    return { value: load(partial), registry: partial };
  } catch (e) {
    if (!(isSkError(e) && e.code === 'SK_ERR_PROVIDER_UNKNOWN')) throw e;
    const full = await registryFor(['?']);
    if (full.names().length === partial.names().length) throw e;
    return { value: load(full), registry: full };
  }
}

/** Provider names after `ref:` keys in YAML or JSON spec text (`ref: vault:…`, `"ref": "aws:…"`). */
export function providersInText(text: string): string[] {
  return [...text.matchAll(/["']?\bref["']?\s*:\s*["']?\s*([a-z][a-z0-9-]*):/g)].map((m) => m[1]!);
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
