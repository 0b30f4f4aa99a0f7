import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { SkError } from './errors.js';
import type { Logger } from './log.js';
import type { OnChange } from './on-change.js';
import { formatOnChange } from './on-change.js';

/**
 * Tells the app that its secret files changed (`onChange` in the spec, `sidekey.io/on-change`).
 *
 * Changes are debounced across the file set: every {@link Notifier.changed} call restarts a
 * `debounceMs` window, and when it closes the action runs once with all files collected. One action
 * runs at a time; changes arriving meanwhile are collected for the next one.
 *
 * Actions:
 * - `signal:<SIG>` — to the process given by `pid()` (the child of `sidekey run`); without one, to the
 *   app in a pod that shares its process namespace (`shareProcessNamespace: true`): the lowest pid that
 *   is neither sidekey itself nor the pod's `pause` process. That rule applies only when pid 1 is the
 *   `pause` process, i.e. in such a pod; anywhere else nothing is signalled and an SK_ERR_NOTIFY is
 *   logged, so a laptop's init is never sent a signal.
 * - `signal:<SIG>@<name>` — to the lowest pid whose `/proc/<pid>/comm` is `name` (the kernel keeps 15
 *   characters of it) or whose argv[0] has the base name `name`; sidekey itself is never chosen.
 * - `http:<url>` — POST `{"files": [...], "at": "<ISO time>"}` with a timeout; retried on network
 *   errors, 429 and 5xx (`retries` more times, 250 ms then 500 ms…). `user:password@` in the URL is
 *   sent as basic auth; logs and errors show the URL without credentials or query.
 * - `exec:<cmd>` — spawned without a shell, with `SIDEKEY_CHANGED_FILES` (one path a line) in its
 *   environment, killed after the timeout; its output is discarded (it might print secrets).
 *
 * A failed notification is logged with SK_ERR_NOTIFY (and handed to `onError`); it never throws.
 */
export interface Notifier {
  /** Record changed files (relative paths); the action runs once the debounce window closes. */
  changed(files: readonly string[]): void;
  /** Run a pending notification now and wait for it (and for one in progress). */
  flush(): Promise<void>;
  /** Drop pending notifications, cancel an HTTP one in flight, and wait for the one in progress. */
  close(): Promise<void>;
}

export interface NotifierOptions {
  readonly debounceMs: number;
  readonly log: Logger;
  /** The process to signal when no `@name` is given (the child of `sidekey run`). */
  readonly pid?: () => number | undefined;
  /** Timeout of one HTTP request or one exec run, in ms (default 5 s for http, 30 s for exec). */
  readonly timeoutMs?: number;
  /** Extra HTTP attempts after the first (default 2). */
  readonly retries?: number;
  /** Where to look for processes (default `/proc`; tests give a fake tree). */
  readonly procRoot?: string;
  /** Called with each failure, after it is logged. */
  readonly onError?: (error: SkError) => void;
}

/** Create the notifier for an `onChange` action; `none` gives one that does nothing. */
export function createNotifier(onChange: OnChange, opts: NotifierOptions): Notifier {
  // Aborted by close(): an HTTP notification in flight (up to 3 attempts of 5 s) must not hold up
  // the agent's shutdown.
  const stopping = new AbortController();
  const action = makeAction(onChange, opts, stopping.signal);
  let pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;

  const fire = (): Promise<void> => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (running) return running;
    if (pending.size === 0 || closed) return Promise.resolve();
    const files = [...pending].sort();
    pending = new Set();
    running = action(files)
      .catch((e: unknown) => {
        // Not an SkError: a bug. Its message may repeat the URL (credentials, query): type only.
        const err =
          e instanceof SkError
            ? e
            : new SkError(
                'SK_ERR_NOTIFY',
                `${shownOnChange(onChange)}: failed unexpectedly (${e instanceof Error ? e.name : typeof e})`,
              );
        opts.log.error({ code: err.code, onChange: onChange.type, files }, err.message);
        try {
          opts.onError?.(err);
        } catch {
          /* a failing callback must not break notifications */
        }
      })
      .finally(() => {
        running = undefined;
        if (pending.size > 0 && !closed && !timer) timer = setTimeout(fire, opts.debounceMs);
      });
    return running;
  };

  return {
    changed(files) {
      if (closed || onChange.type === 'none' || files.length === 0) return;
      for (const f of files) pending.add(f);
      if (timer) clearTimeout(timer);
      timer = setTimeout(fire, opts.debounceMs);
    },
    async flush() {
      if (running) await running;
      await fire();
    },
    async close() {
      closed = true;
      stopping.abort();
      if (timer) clearTimeout(timer);
      timer = undefined;
      pending.clear();
      if (running) await running;
    },
  };
}

type Action = (files: readonly string[]) => Promise<void>;

/** The action as logs and errors show it: an http URL without credentials or query. */
function shownOnChange(o: OnChange): string {
  return o.type === 'http' ? `http:${shownUrl(new URL(o.url))}` : formatOnChange(o);
}

/** A URL without credentials or query: they may carry a token. */
function shownUrl(u: URL): string {
  return `${u.origin}${u.pathname}`;
}

function makeAction(onChange: OnChange, opts: NotifierOptions, stopping: AbortSignal): Action {
  switch (onChange.type) {
    case 'none':
      return async () => {};
    case 'signal':
      return (files) => sendSignal(onChange.signal, onChange.process, files, opts);
    case 'http':
      return (files) => postHttp(onChange.url, files, opts, stopping);
    case 'exec':
      return (files) => runExec(onChange.command, files, opts);
  }
}

/** A process as seen in `/proc`. */
export interface ProcInfo {
  readonly pid: number;
  /** `/proc/<pid>/comm`: the executable name, at most 15 characters. */
  readonly comm: string;
  /** argv[0] from `/proc/<pid>/cmdline`. */
  readonly argv0: string;
}

/** Processes visible in `procRoot`; ones that exit while being read are left out. */
export async function listProcesses(procRoot = '/proc'): Promise<ProcInfo[]> {
  const names = await fs.readdir(procRoot);
  const procs = await Promise.all(
    names
      .filter((n) => /^\d+$/.test(n))
      .map(async (n): Promise<ProcInfo | undefined> => {
        try {
          const [comm, cmdline] = await Promise.all([
            fs.readFile(path.join(procRoot, n, 'comm'), 'utf8'),
            fs.readFile(path.join(procRoot, n, 'cmdline'), 'utf8').catch(() => ''),
          ]);
          return { pid: Number(n), comm: comm.trim(), argv0: cmdline.split('\0')[0] ?? '' };
        } catch {
          return undefined;
        }
      }),
  );
  return procs.filter((p): p is ProcInfo => p !== undefined).sort((a, b) => a.pid - b.pid);
}

const PAUSE = 'pause';

/**
 * The pid to signal, by the rules in {@link Notifier}'s documentation, or a reason why there is none.
 * `self` is sidekey's own pid, never chosen.
 */
export function pickTarget(
  procs: readonly ProcInfo[],
  name: string | undefined,
  self: number,
): { pid: number } | { reason: string } {
  const others = procs.filter((p) => p.pid > 0 && p.pid !== self);
  if (name !== undefined) {
    const comm = name.slice(0, 15);
    const hit = others.find((p) => p.comm === comm || path.posix.basename(p.argv0) === name);
    return hit ? { pid: hit.pid } : { reason: `no process named "${name}" is visible` };
  }
  const init = procs.find((p) => p.pid === 1);
  if (!init || !isPause(init)) {
    return {
      reason:
        'no app process to signal: give signal:<SIG>@<name>, or run the pod with shareProcessNamespace: true',
    };
  }
  const hit = others.find((p) => !isPause(p));
  return hit ? { pid: hit.pid } : { reason: 'no app process is visible besides sidekey and pause' };
}

function isPause(p: ProcInfo): boolean {
  return p.comm === PAUSE || path.posix.basename(p.argv0) === PAUSE;
}

async function sendSignal(
  signal: NodeJS.Signals,
  name: string | undefined,
  files: readonly string[],
  opts: NotifierOptions,
): Promise<void> {
  const what = `signal:${signal.replace(/^SIG/, '')}${name ? `@${name}` : ''}`;
  let pid: number | undefined = name === undefined ? opts.pid?.() : undefined;
  if (pid === undefined) {
    let procs: ProcInfo[];
    try {
      procs = await listProcesses(opts.procRoot);
    } catch (e) {
      throw new SkError(
        'SK_ERR_NOTIFY',
        `${what}: cannot list processes: ${(e as NodeJS.ErrnoException).code}`,
      );
    }
    const t = pickTarget(procs, name, process.pid);
    if ('reason' in t) throw new SkError('SK_ERR_NOTIFY', `${what}: ${t.reason}`);
    pid = t.pid;
  }
  try {
    process.kill(pid, signal);
  } catch (e) {
    throw new SkError('SK_ERR_NOTIFY', `${what}: kill(${pid}) failed: ${(e as NodeJS.ErrnoException).code}`);
  }
  opts.log.info({ onChange: 'signal', signal, pid, files }, 'notified the app');
}

async function postHttp(
  url: string,
  files: readonly string[],
  opts: NotifierOptions,
  stopping: AbortSignal,
): Promise<void> {
  const u = new URL(url);
  const shown = shownUrl(u);
  // fetch refuses URLs with credentials: send them as basic auth instead.
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'sidekey' };
  if (u.username || u.password) {
    const basic = `${decodeUserinfo(u.username)}:${decodeUserinfo(u.password)}`;
    headers.authorization = `Basic ${Buffer.from(basic).toString('base64')}`;
    u.username = '';
    u.password = '';
  }
  const attempts = 1 + (opts.retries ?? 2);
  const body = JSON.stringify({ files, at: new Date().toISOString() });
  let last = '';
  for (let i = 0; i < attempts && !stopping.aborted; i++) {
    if (i > 0) await delay(250 * 2 ** (i - 1), undefined, { signal: stopping }).catch(() => {});
    if (stopping.aborted) break;
    try {
      const res = await fetch(u, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.any([AbortSignal.timeout(opts.timeoutMs ?? 5000), stopping]),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) {
        opts.log.info({ onChange: 'http', url: shown, status: res.status, files }, 'notified the app');
        return;
      }
      last = `HTTP ${res.status}`;
      if (res.status < 500 && res.status !== 429) break;
    } catch (e) {
      const err = e as Error & { cause?: { code?: string } };
      // Never err.message: it can repeat the URL with its query.
      last = err.name === 'TimeoutError' ? 'timed out' : (err.cause?.code ?? err.name);
    }
  }
  if (stopping.aborted) last = 'cancelled, sidekey is stopping';
  throw new SkError('SK_ERR_NOTIFY', `http:${shown}: POST failed: ${last}`);
}

async function runExec(
  command: readonly string[],
  files: readonly string[],
  opts: NotifierOptions,
): Promise<void> {
  const [cmd, ...args] = command;
  const shown = `exec:${cmd}`;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const result = await new Promise<
    { code: number | null; signal: NodeJS.Signals | null } | { error: string }
  >((resolve) => {
    const child = spawn(cmd!, args, {
      shell: false,
      stdio: 'ignore',
      env: { ...process.env, SIDEKEY_CHANGED_FILES: files.join('\n') },
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    child.once('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  if ('error' in result) throw new SkError('SK_ERR_NOTIFY', `${shown}: cannot start: ${result.error}`);
  if (result.signal) {
    const why =
      result.signal === 'SIGKILL' ? `timed out after ${timeoutMs} ms` : `killed by ${result.signal}`;
    throw new SkError('SK_ERR_NOTIFY', `${shown}: ${why}`);
  }
  if (result.code !== 0) throw new SkError('SK_ERR_NOTIFY', `${shown}: exited with code ${result.code}`);
  opts.log.info({ onChange: 'exec', command: cmd, files }, 'notified the app');
}

/** URL userinfo as typed: a `%` that starts no valid escape is kept literally, not a failure. */
function decodeUserinfo(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
