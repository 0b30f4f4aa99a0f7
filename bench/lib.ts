import { type ChildProcess, spawn } from 'node:child_process';
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
