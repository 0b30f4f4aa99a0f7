import path from 'node:path';
import { Engine, type WriteReport } from '../src/engine.js';
import { createLogger, silentLogger } from '../src/log.js';
import { createNotifier } from '../src/notify.js';
import type { ProviderRegistry } from '../src/providers/registry.js';
import type { ResolvedSpec } from '../src/spec.js';
import { errorLine, loadCommandSpec, onceSignal, reportError, withOutputDir } from './common.js';

/**
 * `sidekey dev`: local file-mode. Renders a spec into a local directory and keeps it current while
 * the `file:` sources (and the spec itself) change. Output is for a person, not JSON: what was
 * written (file names, never values), what changed, what failed. After a failure it keeps running
 * with the last good files.
 */

export interface DevOptions {
  config?: string | undefined;
  output?: string | undefined;
}

export const DEFAULT_CONFIG = 'sidekey.yaml';

/** Where dev/run output goes; a function so tests and the bench can capture it. */
export interface Printer {
  out(line: string): void;
  err(line: string): void;
}

const stdio: Printer = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
};

function rel(p: string): string {
  const r = path.relative(process.cwd(), p);
  return r === '' ? '.' : r.startsWith('..') ? p : r;
}

function clock(): string {
  return new Date().toTimeString().slice(0, 8);
}

/** The engine's JSON log, shown only when asked for (SIDEKEY_LOG_LEVEL); dev prints its own lines. */
function engineLog() {
  return process.env.SIDEKEY_LOG_LEVEL ? createLogger({ name: 'sidekey-dev' }) : silentLogger;
}

/**
 * One line per file of the first write: name, mode and the env var the app reads, never the value.
 * `changed` (the first write's report): files not in it were already up to date from an earlier run
 * and were not rewritten, so they say "unchanged"; without it every file says "wrote".
 */
export function describeFiles(spec: ResolvedSpec, changed?: readonly string[]): string[] {
  const width = Math.max(...spec.secrets.map((s) => s.file.length), 4);
  const rewritten = changed ? new Set(changed) : undefined;
  const fresh = (file: string) => !rewritten || rewritten.has(file);
  const verbWidth = spec.secrets.every((s) => fresh(s.file)) ? 'wrote'.length : 'unchanged'.length;
  return spec.secrets.map((s) => {
    const extra = [
      `mode ${s.mode.toString(8).padStart(4, '0')}`,
      s.template !== undefined ? 'template' : s.format,
      s.env ? `$${s.env}_FILE` : undefined,
    ].filter(Boolean);
    const verb = (fresh(s.file) ? 'wrote' : 'unchanged').padEnd(verbWidth);
    return `  ${verb}  ${s.file.padEnd(width)}  (${extra.join(', ')})`;
  });
}

/** A running dev session: the engine of the current spec, replaced when the spec file changes. */
class DevSession {
  #engine: Engine | undefined;
  #spec: ResolvedSpec | undefined;
  #registry: ProviderRegistry | undefined;
  /** Files of the first write that were already up to date (not rewritten). */
  #unchangedAtStart = 0;
  /** Secrets whose failure was printed, with the line, so a retry does not print it again. */
  readonly #failing = new Map<string, string>();
  readonly #p: Printer;
  readonly #opts: DevOptions;
  readonly #config: string;

  constructor(opts: DevOptions, p: Printer) {
    this.#opts = opts;
    this.#p = p;
    this.#config = opts.config ?? DEFAULT_CONFIG;
  }

  get config(): string {
    return this.#config;
  }

  async #load(): Promise<{ spec: ResolvedSpec; registry: ProviderRegistry }> {
    const { spec, registry } = await loadCommandSpec({ config: this.#config });
    return {
      spec: this.#opts.output !== undefined ? withOutputDir(spec, path.resolve(this.#opts.output)) : spec,
      registry,
    };
  }

  async #startEngine(spec: ResolvedSpec, registry: ProviderRegistry) {
    const log = engineLog();
    const engine = new Engine(spec, {
      registry,
      log,
      // `sidekey dev` has no app to notify: it only prints what changed.
      notifier: createNotifier({ type: 'none' }, { debounceMs: 0, log }),
      onWrite: (r: WriteReport) => {
        for (const name of r.changedSecrets) this.#failing.delete(name);
        if (r.first || engine !== this.#engine) return;
        const files = r.changedFiles.length > 0 ? r.changedFiles.join(', ') : '(none)';
        this.#p.out(`[${clock()}] updated  ${files}`);
      },
      onSecretError: (name: string, e: unknown) => {
        if (engine !== this.#engine) return;
        // Retries with backoff repeat the same failure: say it once until it changes or recovers.
        const line = errorLine(e);
        if (this.#failing.get(name) === line) return;
        this.#failing.set(name, line);
        this.#p.err(`[${clock()}] failed   ${name}: ${errorLine(e)} (keeping the last good files)`);
      },
      onFatal: (e: unknown) => {
        this.#p.err(`[${clock()}] failed   ${errorLine(e)}`);
      },
    });
    const report = await engine.start().catch(async (e: unknown) => {
      await engine.stop().catch(() => {});
      throw e;
    });
    return { engine, report };
  }

  /** Load the spec, write everything once and start watching. Rejects on the first failure. */
  async start(): Promise<void> {
    const { spec, registry } = await this.#load();
    const { engine, report } = await this.#startEngine(spec, registry);
    this.#use(engine, spec, registry);
    this.#p.out(`sidekey dev: ${rel(this.#config)} → ${rel(spec.output.dir)}`);
    for (const l of describeFiles(spec, report.changedFiles)) this.#p.out(l);
    const changed = new Set(report.changedFiles);
    this.#unchangedAtStart = spec.secrets.filter((s) => !changed.has(s.file)).length;
  }

  /** The line that tells the user it is all set (printed once the watches are up). */
  ready(): void {
    const spec = this.#spec!;
    const n = spec.secrets.length;
    const u = this.#unchangedAtStart;
    const what =
      u === 0
        ? `${n} file(s) written to ${rel(spec.output.dir)}`
        : `${n - u} file(s) written, ${u} unchanged in ${rel(spec.output.dir)}`;
    this.#p.out(`${what}. Watching the sources: edit them and the files follow. Ctrl-C to stop.`);
  }

  /** The spec file changed: start a new engine on it; if that fails, go back to the previous spec. */
  async reload(): Promise<void> {
    let loaded: { spec: ResolvedSpec; registry: ProviderRegistry };
    try {
      loaded = await this.#load();
    } catch (e) {
      this.#p.err(`[${clock()}] failed   ${errorLine(e)} (spec not reloaded; keeping the last good files)`);
      return;
    }
    const old = this.#engine;
    const prev = this.#spec && this.#registry ? { spec: this.#spec, registry: this.#registry } : undefined;
    this.#engine = undefined;
    await old?.stop();
    try {
      // Same directory: only files whose content changed are replaced.
      const { engine, report } = await this.#startEngine(loaded.spec, loaded.registry);
      this.#use(engine, loaded.spec, loaded.registry);
      const files =
        report.changedFiles.length > 0 ? `; updated ${report.changedFiles.join(', ')}` : '; all unchanged';
      this.#p.out(
        `[${clock()}] reloaded ${rel(this.#config)}: ${loaded.spec.secrets.length} file(s)${files}`,
      );
    } catch (e) {
      this.#p.err(`[${clock()}] failed   ${errorLine(e)} (spec not reloaded; keeping the last good files)`);
      if (!prev) return;
      try {
        const { engine } = await this.#startEngine(prev.spec, prev.registry);
        this.#use(engine, prev.spec, prev.registry);
      } catch (e2) {
        this.#p.err(`[${clock()}] failed   ${errorLine(e2)} (keeping the last good files)`);
      }
    }
  }

  #use(engine: Engine, spec: ResolvedSpec, registry: ProviderRegistry): void {
    this.#engine = engine;
    this.#spec = spec;
    this.#registry = registry;
  }

  async stop(): Promise<void> {
    const e = this.#engine;
    this.#engine = undefined;
    await e?.stop();
  }
}

/** Run `sidekey dev`; resolves with the exit code. */
export async function runDev(opts: DevOptions, p: Printer = stdio): Promise<number> {
  const stopSignal = onceSignal(['SIGINT', 'SIGTERM']);
  const session = new DevSession(opts, p);
  let unwatch: (() => Promise<void>) | undefined;
  try {
    await session.start();
    unwatch = await watchSpec(session.config, () => session.reload());
    session.ready();
    await stopSignal.promise;
    p.out('stopping');
    return 0;
  } catch (e) {
    return reportError(e);
  } finally {
    await unwatch?.();
    await session.stop().catch(() => {});
    stopSignal.dispose();
  }
}

/** Watch the spec file (editors often replace it by rename, which chokidar follows). */
async function watchSpec(file: string, onChange: () => Promise<void>): Promise<() => Promise<void>> {
  const { watch } = await import('chokidar');
  const w = watch(path.resolve(file), { ignoreInitial: true, awaitWriteFinish: false });
  await new Promise<void>((resolve) => w.once('ready', () => resolve()));
  // Serialise reloads: a burst of saves runs one reload after another, never two at once.
  let chain = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  w.on('all', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      chain = chain.then(onChange);
    }, 100);
  });
  return async () => {
    clearTimeout(timer);
    await w.close();
    await chain;
  };
}
