import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Run the real CLI (`node bin/sidekey.js`, i.e. the esbuild bundle in dist/) as a process, and record
 * everything it prints. Every byte of stdout/stderr is appended to a log file under
 * {@link OUTPUT_LOG_DIR} as it arrives, so the integration tier's teardown can scan all output for the
 * canary secret even when a test fails or a process is killed.
 */

/** The fixture secret value that must never appear in anything a sidekey process prints. */
export const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = path.join(REPO_ROOT, 'bin', 'sidekey.js');

/**
 * Where output is recorded: the integration globalSetup makes a fresh directory per test run and
 * exports it as `SIDEKEY_TEST_OUTPUT_DIR` (inherited by the test workers); outside that, a shared
 * directory under $TMPDIR.
 */
export const OUTPUT_LOG_DIR =
  process.env.SIDEKEY_TEST_OUTPUT_DIR ?? path.join(os.tmpdir(), 'sidekey-test-output', 'adhoc');

let seq = 0;

/** A new log file path for one process's output: `<OUTPUT_LOG_DIR>/<pid>-<n>.log`. */
export function newLogFile(): string {
  mkdirSync(OUTPUT_LOG_DIR, { recursive: true });
  seq += 1;
  return path.join(OUTPUT_LOG_DIR, `${process.pid}-${seq}.log`);
}

/**
 * Record output that did not come through {@link runCli}/{@link spawnCli} (e.g. an in-process server's
 * log lines, a webhook response) so the canary scan covers it too.
 */
export function recordOutput(label: string, text: string | Buffer): void {
  appendFileSync(newLogFile(), `# ${label}\n${text.toString()}`);
}

export interface CliOptions {
  cwd?: string;
  /** Extra environment; merged over the test process's environment. */
  env?: Record<string, string | undefined>;
  /** Written to stdin, then stdin is closed. */
  input?: string;
  /** Kill (SIGKILL) after this many ms; default 60 s. */
  timeoutMs?: number;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The recorded log of this run. */
  logFile: string;
}

/** A running CLI process. */
export interface CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** Everything printed so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<CliResult>;
  /** Resolves once `pattern` shows up in stdout or stderr; rejects on exit or timeout. */
  waitForOutput(pattern: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Send a signal; resolves with the result once the process exits. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<CliResult>;
}

/** Start `node bin/sidekey.js <args>` and return a handle; output is recorded as it arrives. */
export function spawnCli(args: readonly string[], opts: CliOptions = {}): CliProcess {
  const logFile = newLogFile();
  appendFileSync(logFile, `# sidekey ${args.join(' ')}\n`);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...opts.env })) if (v !== undefined) env[k] = v;
  // No colour codes or debug stacks unless a test asks for them.
  env.NO_COLOR ??= '1';
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of waiters) w();
  };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
    appendFileSync(logFile, s);
    wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    err += s;
    appendFileSync(logFile, s);
    wake();
  });
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  else child.stdin!.end();

  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  let done = false;
  const exited = new Promise<CliResult>((resolve) => {
    child.on('error', (e) => {
      err += `spawn error: ${e.message}\n`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done = true;
      wake();
      resolve({ code, signal, stdout: out, stderr: err, logFile });
    });
  });

  const waitForOutput = (pattern: string | RegExp, timeoutMs = 10_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const matches = () => {
        const all = out + err;
        return typeof pattern === 'string' ? all.includes(pattern) : pattern.test(all);
      };
      const check = () => {
        if (matches()) {
          cleanup();
          resolve();
        } else if (done) {
          cleanup();
          reject(new Error(`process exited before printing ${String(pattern)}; stderr:\n${err}`));
        }
      };
      const t = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${String(pattern)}; stdout:\n${out}\nstderr:\n${err}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(t);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<CliResult> => {
    if (!done) child.kill(signal);
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    try {
      return await exited;
    } finally {
      clearTimeout(t);
    }
  };

  return {
    child,
    pid: child.pid ?? -1,
    logFile,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForOutput,
    stop,
  };
}

/** Run `node bin/sidekey.js <args>` to completion. */
export function runCli(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  return spawnCli(args, opts).exited;
}

/**
 * Poll `fn` until it returns a truthy value (or a promise of one) and return it; throws after
 * `timeoutMs` with the last error thrown by `fn`, if any.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  timeoutMs = 5000,
  intervalMs = 25,
): Promise<NonNullable<Awaited<T>>> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<Awaited<T>>;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      const why = lastErr instanceof Error ? `: ${lastErr.message}` : '';
      throw new Error(`waitFor timed out after ${timeoutMs} ms${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
