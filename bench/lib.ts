import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Shared pieces of the benchmarks. A benchmark is a module `bench/<name>.bench.ts` exporting
 * `run(): Promise<Row[]>`; `bench/run.ts` discovers and runs them one after another and prints one
 * table. Benchmarks print figures; they are not tests and never fail the run on a missed target.
 */

/** One printed figure. */
export interface Row {
  /** What is measured, e.g. `agent (50 secrets, file:)`. */
  section: string;
  metric: string;
  value: number;
  unit: string;
  /** Target the figure should stay under (smaller is better). */
  max?: number;
  /** Extra detail printed after the figure (spread, breakdown). */
  note?: string;
}

export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
export const BIN = path.join(REPO_ROOT, 'bin', 'sidekey.js');

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Memory figures of a live process from /proc/<pid>/status, in KiB. */
export function procMemory(pid: number): { rss: number; anon: number; file: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? Number.NaN);
  return { rss: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile'), hwm: kib('VmHWM') };
}

/**
 * Where fixtures live: a tmpfs (/dev/shm) when there is one, like the memory-backed volume the agent
 * writes to in a pod (fsync is free there; on a disk it is not). `SIDEKEY_BENCH_DIR` overrides.
 */
export function benchRoot(): string {
  if (process.env.SIDEKEY_BENCH_DIR) return process.env.SIDEKEY_BENCH_DIR;
  return existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
}

/** A temp directory with a spec of `n` secrets over five `file:` sources (raw, json, env, template). */
export function makeFixture(n = 50): {
  dir: string;
  spec: string;
  out: string;
  source: (i: number) => string;
} {
  const dir = mkdtempSync(path.join(benchRoot(), 'sidekey-bench-'));
  const sources = 5;
  const per = Math.ceil(n / sources);
  const writeSource = (s: number, bump = '') => {
    let y = '';
    for (let i = s * per; i < Math.min(n, (s + 1) * per); i++) {
      y += `k${i}:\n  user: user-${i}\n  password: password-${i}${bump}\n  port: ${5000 + i}\n`;
    }
    writeFileSync(path.join(dir, `source-${s}.yaml`), y);
  };
  for (let s = 0; s < sources; s++) writeSource(s);
  let spec = 'apiVersion: sidekey.io/v1\nkind: SecretSpec\noutput:\n  dir: out\nrefresh: 1h\nsecrets:\n';
  for (let i = 0; i < n; i++) {
    const src = `source-${Math.floor(i / per)}.yaml`;
    const kind = i % 10;
    if (kind < 6) spec += `  s${i}:\n    ref: file:${src}#k${i}.password\n`;
    else if (kind < 8)
      spec += `  s${i}:\n    ref: file:${src}#k${i}\n    format: json\n    file: s${i}.json\n`;
    else if (kind < 9) spec += `  s${i}:\n    ref: file:${src}#k${i}\n    format: env\n    file: s${i}.env\n`;
    else {
      spec += `  s${i}:\n    ref: file:${src}#k${i}\n    file: conf/s${i}.yaml\n`;
      spec += `    template: "url: postgres://{{ data.user }}:{{ data.password }}@db:{{ data.port }}/app"\n`;
    }
  }
  const specFile = path.join(dir, 'sidekey.yaml');
  writeFileSync(specFile, spec);
  mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  return {
    dir,
    spec: specFile,
    out: path.join(dir, 'out'),
    /** The source file holding secret `i`. */
    source: (i) => path.join(dir, `source-${Math.floor(i / per)}.yaml`),
  };
}

export function removeFixture(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Start `node bin/sidekey.js <args>` (output discarded unless asked for). */
export function spawnSidekey(args: string[], opts: { cwd?: string; capture?: boolean } = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    stdio: ['ignore', opts.capture ? 'pipe' : 'ignore', opts.capture ? 'pipe' : 'ignore'],
  });
}

/** Poll (tight loop, 1 ms) until `fn` is true; returns the time it became true (performance.now()). */
export async function pollUntil(fn: () => boolean, timeoutMs = 10_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (fn()) return performance.now();
    if (performance.now() > deadline) throw new Error('timed out');
    await sleep(1);
  }
}

/** Resolves when the child exits. */
export function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((r) => {
    if (child.exitCode !== null) r(child.exitCode);
    else child.once('exit', (code) => r(code));
  });
}

export function ready(out: string): boolean {
  return existsSync(path.join(out, '..data'));
}

export const mib = (kib: number) => kib / 1024;

export type ProcMemory = ReturnType<typeof procMemory>;

/** `anon A + file-backed F MiB` of a memory reading. */
export function anonFile(m: { anon: number; file: number }): string {
  return `anon ${mib(m.anon).toFixed(1)} + file-backed ${mib(m.file).toFixed(1)} MiB`;
}

/** `min A, max B` of a series of milliseconds. */
export function minMax(xs: readonly number[]): string {
  return `min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)}`;
}

/** Memory of a live process, read once a second for `seconds` s (the first reading after 1 s). */
export async function sampleMemory(pid: number, seconds: number): Promise<ProcMemory[]> {
  const samples: ProcMemory[] = [];
  for (let i = 0; i < seconds; i++) {
    await sleep(1000);
    samples.push(procMemory(pid));
  }
  return samples;
}

/**
 * The "agent RSS at steady state" row from once-a-second samples: the last one, with the reading
 * after `alsoAfter` s in the note when asked for.
 */
export function steadyRssRow(section: string, samples: readonly ProcMemory[], alsoAfter?: number): Row {
  const last = samples.at(-1)!;
  const also =
    alsoAfter === undefined
      ? ''
      : `${mib(samples[alsoAfter - 1]!.rss).toFixed(1)} MiB after ${alsoAfter} s; `;
  return {
    section,
    metric: 'agent RSS at steady state (VmRSS)',
    value: mib(last.rss),
    unit: 'MiB',
    max: 48,
    note: `after ${samples.length} s: ${anonFile(last)}; ${also}peak ${mib(last.hwm).toFixed(1)} MiB`,
  };
}

/**
 * Milliseconds from spawning a long-running agent (`start`) to its complete file set in `out`
 * (`out` is removed first); then `whileUp` (if any) runs and the agent is stopped.
 */
export async function spawnToReady(
  start: () => ChildProcess,
  out: string,
  opts: { timeoutMs?: number; whileUp?: (t0: number) => Promise<void> } = {},
): Promise<number> {
  rmSync(out, { recursive: true, force: true });
  const t0 = performance.now();
  const child = start();
  try {
    const dt = (await pollUntil(() => ready(out), opts.timeoutMs)) - t0;
    await opts.whileUp?.(t0);
    return dt;
  } finally {
    child.kill('SIGTERM');
    await exited(child);
  }
}

/** Milliseconds from spawning `agent --once -c <spec>` to its exit 0 (`out` is removed first). */
export async function onceToExit(spec: string, out: string): Promise<number> {
  rmSync(out, { recursive: true, force: true });
  const t0 = performance.now();
  const code = await exited(spawnSidekey(['agent', '--once', '-c', spec]));
  if (code !== 0) throw new Error(`agent --once exited ${code}`);
  return performance.now() - t0;
}

/**
 * CPU time (ms, user + system) of one run of `cmd`, from bash's `times` (its children's times),
 * which Node's child_process does not report. Output discarded.
 */
export function bashCpuMs(
  cmd: readonly string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): number {
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const r = spawnSync('bash', ['-c', `${cmd.map(q).join(' ')} >/dev/null 2>&1; times`], {
    cwd: opts.cwd,
    encoding: 'utf8',
    env: { ...process.env, ...opts.env },
  });
  // `times` prints the shell's, then its children's "<user>m<s>s <sys>m<s>s".
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  const t = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60_000 + Number(m[2]) * 1000);
  if (r.status !== 0 || t.length !== 2)
    throw new Error(`could not time ${cmd.slice(1).join(' ')}: ${r.stderr}`);
  return t[0]! + t[1]!;
}
