import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine, type WriteReport } from '../src/engine.js';
import { SkError } from '../src/errors.js';
import { createLogger, silentLogger } from '../src/log.js';
import { createNotifier } from '../src/notify.js';
import { DEFAULTS, type ResolvedSpec } from '../src/spec.js';
import { errorLine, loadCommandSpec, reportError, withOutputDir } from './common.js';
import { DEFAULT_CONFIG } from './dev.js';

/**
 * `sidekey run [-c sidekey.yaml] -- <cmd> [args…]`: render the spec, start the command with
 * `<ENV>_FILE` variables pointing at the files, keep the files current, notify the command on change
 * (spec `onChange`; a signal goes to the command's pid), forward SIGINT/SIGTERM/SIGHUP to it, and exit
 * with its exit code (128 + signal number when it was killed by a signal).
 *
 * Output directory: `-o`, else the spec's `output.dir`, else a private temporary directory (0700)
 * removed on exit. A spec whose `output.dir` is the in-cluster default (`/run/sidekey`) counts as
 * unset, since a laptop rarely has it.
 */

export interface RunOptions {
  config?: string | undefined;
  output?: string | undefined;
}

/** Signals passed on to the command. */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** `SIDEKEY_<NAME>_FILE` for a secret without `env`: uppercased, `-` and `.` become `_`. */
export function defaultEnvName(secretName: string): string {
  return `SIDEKEY_${secretName.toUpperCase().replace(/[-.]/g, '_')}`;
}

/**
 * The command's environment: the caller's, without every variable a secret's `env` replaces (as the
 * webhook removes them from a pod's containers, so the same spec behaves the same on a laptop: the app
 * cannot fall back to a stale `DB_PASSWORD` from the shell), plus `<ENV>_FILE` per secret and
 * `SIDEKEY_DIR`.
 */
export function childEnv(
  spec: ResolvedSpec,
  base: NodeJS.ProcessEnv,
): { env: NodeJS.ProcessEnv; removed: string[] } {
  const env: NodeJS.ProcessEnv = { ...base };
  const removed: string[] = [];
  for (const s of spec.secrets) {
    if (s.env !== undefined && Object.hasOwn(env, s.env)) {
      delete env[s.env];
      removed.push(s.env);
    }
  }
  return { env: { ...env, ...fileEnv(spec) }, removed };
}

/** The environment the command gets: `<ENV>_FILE` per secret and `SIDEKEY_DIR`. */
export function fileEnv(spec: ResolvedSpec): Record<string, string> {
  const env: Record<string, string> = { SIDEKEY_DIR: spec.output.dir };
  for (const s of spec.secrets) {
    env[`${s.env ?? defaultEnvName(s.name)}_FILE`] = path.join(spec.output.dir, s.file);
  }
  return env;
}

function say(line: string): void {
  process.stderr.write(`sidekey: ${line}\n`);
}

/** Run `sidekey run`; resolves with the exit code (the command's). */
export async function runCommand(command: readonly string[], opts: RunOptions): Promise<number> {
  if (command.length === 0 || command[0] === '') {
    return reportError(
      new SkError('SK_ERR_CLI_USAGE', 'sidekey run: no command given; use sidekey run -- <cmd> [args…]'),
    );
  }
  const log = process.env.SIDEKEY_LOG_LEVEL ? createLogger({ name: 'sidekey-run' }) : silentLogger;
  let tmpDir: string | undefined;
  let engine: Engine | undefined;
  let child: ChildProcess | undefined;
  const forwarders: Array<[NodeJS.Signals, () => void]> = [];
  const failing = new Map<string, string>();
  try {
    let { spec, registry } = await loadCommandSpec({ config: opts.config ?? DEFAULT_CONFIG });
    if (opts.output !== undefined) {
      spec = withOutputDir(spec, path.resolve(opts.output));
    } else if (spec.output.dir === DEFAULTS.outputDir) {
      // mkdtemp creates the directory 0700: only this user can read the files.
      tmpDir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-run-'));
      spec = withOutputDir(spec, path.join(tmpDir, 'secrets'));
    }

    const notifier = createNotifier(spec.onChange, {
      debounceMs: spec.debounceMs,
      log,
      pid: () => (child && child.exitCode === null ? child.pid : undefined),
      onError: (e) => say(`failed to notify ${command[0]}: ${errorLine(e)}`),
    });
    engine = new Engine(spec, {
      registry,
      log,
      notifier,
      onWrite: (r: WriteReport) => {
        for (const name of r.changedSecrets) failing.delete(name);
        if (!r.first && r.changedFiles.length > 0) say(`updated ${r.changedFiles.join(', ')}`);
      },
      onSecretError: (name: string, e: unknown) => {
        // Retries repeat the same failure: say it once until it changes or the secret recovers.
        const line = errorLine(e);
        if (failing.get(name) === line) return;
        failing.set(name, line);
        say(`failed ${name}: ${line} (keeping the last good files)`);
      },
      onFatal: (e: unknown) => say(`failed ${errorLine(e)}`),
    });
    await engine.start();
    say(`wrote ${spec.secrets.length} file(s) to ${spec.output.dir}; starting ${command[0]}`);

    const { env, removed } = childEnv(spec, process.env);
    // Names only: the variables' values may be the very secrets.
    if (removed.length > 0)
      say(`removed ${removed.join(', ')} from ${command[0]}'s environment (replaced by *_FILE)`);
    const started = startChild(command, env);
    child = started.child;
    // Signals sent to sidekey go to the command; sidekey exits when the command does.
    for (const sig of FORWARDED_SIGNALS) {
      const h = () => {
        child?.kill(sig);
      };
      process.on(sig, h);
      forwarders.push([sig, h]);
    }
    const result = await started.done;
    if (result.signal) {
      const hup = spec.onChange.type === 'signal' && spec.onChange.signal === result.signal;
      say(
        hup
          ? `${command[0]} was killed by ${result.signal}: onChange sends it after files change, and a command without a ${result.signal} handler ends on it; handle the signal, or use onChange: none or exec:<command>`
          : `${command[0]} was killed by ${result.signal}`,
      );
    }
    return result.code;
  } catch (e) {
    return reportError(e);
  } finally {
    for (const [sig, h] of forwarders) process.off(sig, h);
    await engine?.stop().catch(() => {});
    if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  }
}

/** Start the command; `done` resolves with its exit code or rejects with SK_ERR_COMMAND. */
function startChild(
  command: readonly string[],
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; done: Promise<{ code: number; signal: NodeJS.Signals | null }> } {
  const [file, ...args] = command as [string, ...string[]];
  const child = spawn(file, args, { stdio: 'inherit', env });
  const done = new Promise<{ code: number; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) => {
      // 'error' without a pid: the command never started (ENOENT, EACCES).
      if (child.pid === undefined) {
        const why = e.code === 'ENOENT' ? 'not found' : (e.code ?? 'cannot be started');
        reject(new SkError('SK_ERR_COMMAND', `command "${file}": ${why}`, { where: file, cause: e }));
      }
    });
    child.once('exit', (code, signal) => {
      if (signal) resolve({ code: 128 + (os.constants.signals[signal] ?? 0), signal });
      else resolve({ code: code ?? 1, signal: null });
    });
  });
  return { child, done };
}
