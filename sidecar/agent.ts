import { existsSync } from 'node:fs';
import path from 'node:path';
import { Engine, type EngineObserver, roughDuration, type WriteReport } from '../src/engine.js';
import { SkError } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { createNotifier } from '../src/notify.js';
import type { ResolvedSpec } from '../src/spec.js';
import { bufferedLogger, loadCommandSpec, onceSignal, reportError } from './common.js';
import type { AgentListener } from './metrics.js';

/**
 * `sidekey agent`: the container the webhook injects.
 *
 * - `--once` (init container): fetch every secret, write the file set, exit 0; on any failure exit
 *   non-zero with one line `SK_ERR_*: cause` and write nothing.
 * - long-running (sidecar): write, then rotate until SIGTERM/SIGINT, then stop cleanly and exit 0;
 *   exit 0 as well when `agent.exitFile` appears (a Job's app creates it when done).
 * - `--probe` (startup probe): exit 0 once the first complete write is done (`<output.dir>/..data`).
 * - with `agent.metrics`, the long-running agent also serves /metrics, /healthz and /readyz
 *   (sidecar/metrics.ts, loaded only then).
 *
 * The spec comes from `-c <file>` or the `SIDEKEY_SPEC` environment variable (JSON).
 */

export interface AgentOptions {
  config?: string | undefined;
  once?: boolean | undefined;
  probe?: boolean | undefined;
}

/** How often the agent looks for `agent.exitFile` (a stat per tick is negligible). */
export const EXIT_FILE_POLL_MS = 500;

/** Run the agent; resolves with the process exit code. */
export async function runAgent(opts: AgentOptions): Promise<number> {
  if (opts.probe) return (await import('./probe.js')).runProbe(opts);
  if (opts.once) return once(opts);
  return longRunning(opts);
}

/** The marker the writer swaps in last: present ⇔ a complete file set is there. */
export function readyMarker(spec: ResolvedSpec): string {
  return path.join(spec.output.dir, '..data');
}

/** Where `agent.exitFile` is looked for: absolute, or relative to the spec's base directory. */
export function exitFilePath(spec: ResolvedSpec): string | undefined {
  const f = spec.agent.exitFile;
  if (f === undefined) return undefined;
  return path.resolve(spec.backends.file?.baseDir ?? process.cwd(), f);
}

async function once(opts: AgentOptions): Promise<number> {
  const started = Date.now();
  // Log lines are held back: on failure the only output is the one error line.
  const buf = bufferedLogger();
  let engine: Engine | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const { spec, registry } = await loadCommandSpec({ config: opts.config, fromEnv: true });
    const limitMs = spec.agent.onceTimeoutMs;
    const deadline = started + limitMs;
    const notifier = createNotifier({ type: 'none' }, { debounceMs: 0, log: buf.log });
    const eng = new Engine(spec, { registry, log: buf.log, notifier, deadline });
    engine = eng;
    // The engine ends every backend call at the deadline itself (naming the call); this is the net
    // for anything else that could still be running then, a moment later so the engine's own
    // (more precise) error wins the race.
    const overdue = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(onceTimeoutError(eng, limitMs)),
        Math.max(0, deadline - Date.now()) + ONCE_NET_GRACE_MS,
      );
    });
    const report = await Promise.race([eng.syncOnce(), overdue]);
    await eng.stop();
    buf.log.info(
      { files: report.changedFiles.length, secrets: spec.secrets.length, dir: spec.output.dir },
      'wrote all secrets; exiting (--once)',
    );
    buf.flush();
    return 0;
  } catch (e) {
    // Stopping ends the calls still running; a provider that does not let go cannot hold the exit.
    if (engine) await Promise.race([engine.stop().catch(() => {}), sleep(STOP_GRACE_MS)]);
    buf.drop();
    const code = reportError(e);
    // Nothing more is printed; a socket some library keeps open must not keep the process alive.
    setTimeout(() => process.exit(code), STOP_GRACE_MS).unref();
    return code;
  } finally {
    clearTimeout(timer);
  }
}

/** The net behind the engine's own deadline fires this much after it. */
const ONCE_NET_GRACE_MS = 200;

/** How long `--once` waits for providers to let go after a failure before it exits anyway. */
const STOP_GRACE_MS = 1000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** `agent --once` ran out of time: name the backend call it is still waiting for (the oldest). */
export function onceTimeoutError(engine: Engine, limitMs: number): SkError {
  const call = engine.calls()[0];
  const waiting = call
    ? `still waiting for ${call.what} (no answer for ${roughDuration(Date.now() - call.since)})`
    : 'no backend call was running (writing the files)';
  return new SkError(
    'SK_ERR_BACKEND_TIMEOUT',
    `agent --once did not finish within ${roughDuration(limitMs)} (agent.onceTimeout): ${waiting}`,
    { where: call?.what ?? 'agent.onceTimeout' },
  );
}

async function longRunning(opts: AgentOptions): Promise<number> {
  const stopSignal = onceSignal(['SIGTERM', 'SIGINT']);
  const log = createLogger({ name: 'sidekey-agent' });
  let engine: Engine | undefined;
  let listener: AgentListener | undefined;
  let exitTimer: NodeJS.Timeout | undefined;
  try {
    const { spec, registry, source } = await loadCommandSpec({ config: opts.config, fromEnv: true });
    log.info({ spec: source, dir: spec.output.dir, secrets: spec.secrets.length }, 'agent starting');
    // The listener (and prom-client with it) loads once the first write is done, so it never delays
    // the files; the engine's events until then are held and replayed. The kubelet's httpGet probe
    // fails (connection refused) until the listener is up, as it would with a 503 before the write.
    const deferred = spec.agent.metrics ? deferredObserver() : undefined;

    let fatal: ((e: unknown) => void) | undefined;
    const fatalP = new Promise<never>((_, reject) => {
      fatal = reject;
    });
    // A rejection nobody awaits yet (before the race below) must not crash the process.
    fatalP.catch(() => {});
    const notifier = createNotifier(spec.onChange, { debounceMs: spec.debounceMs, log });
    engine = new Engine(spec, {
      registry,
      log,
      notifier,
      onWrite: (r: WriteReport) => {
        if (!r.first) log.info({ files: r.changedFiles, secrets: r.changedSecrets }, 'files updated');
      },
      onFatal: (e: unknown) => fatal?.(e),
      ...(deferred ? { observer: deferred.observer } : {}),
    });

    const first = await Promise.race([engine.start(), stopSignal.promise]);
    if (typeof first === 'string') {
      log.info({ signal: first }, 'stopping before the first write');
      await engine.stop();
      return 0;
    }
    const metrics = spec.agent.metrics;
    if (metrics && deferred) {
      // A listener that cannot bind ends the agent (SK_ERR_LISTEN): the kubelet's probe would never pass.
      const { startAgentListener } = await import('./metrics.js');
      listener = await startAgentListener({ ...metrics, log, status: () => engine?.status() });
      deferred.attach(listener.observer);
    }
    log.info({ files: first.changedFiles.length, dir: spec.output.dir }, 'ready: first complete write done');

    const exitFile = exitFilePath(spec);
    const exitFileP = new Promise<string>((resolve) => {
      if (exitFile === undefined) return;
      exitTimer = setInterval(() => {
        if (existsSync(exitFile)) resolve(exitFile);
      }, EXIT_FILE_POLL_MS);
    });

    const why = await Promise.race([stopSignal.promise, exitFileP, fatalP]);
    if (why.startsWith('SIG')) log.info({ signal: why }, 'stopping');
    else log.info({ exitFile: why }, 'exit file appeared; stopping');
    await engine.stop();
    log.info('stopped');
    return 0;
  } catch (e) {
    await engine?.stop().catch(() => {});
    return reportError(e);
  } finally {
    if (exitTimer) clearInterval(exitTimer);
    await listener?.close();
    stopSignal.dispose();
  }
}

/**
 * An engine observer that holds events until the real one is attached, then replays them and forwards
 * everything after: the metrics listener comes up while the first fetches run.
 */
export function deferredObserver(): { observer: EngineObserver; attach(o: EngineObserver): void } {
  let target: EngineObserver | undefined;
  let held: Array<(o: EngineObserver) => void> = [];
  const call = (f: (o: EngineObserver) => void) => {
    if (target) f(target);
    else held.push(f);
  };
  return {
    observer: {
      providerCreated: (name, provider) => call((o) => o.providerCreated?.(name, provider)),
      backendCall: (p, op, s, code) => call((o) => o.backendCall?.(p, op, s, code)),
      refreshed: (secret, at) => call((o) => o.refreshed?.(secret, at)),
      refreshFailed: (secret, code, at) => call((o) => o.refreshFailed?.(secret, code, at)),
    },
    attach(o) {
      target = o;
      for (const f of held) f(o);
      held = [];
    },
  };
}
