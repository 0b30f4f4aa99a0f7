import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IMAGE_NODE_OPTION } from '../sidecar/v8-flags.ts';
import { type OpenBao, startOpenBao } from '../test/integration/servers/openbao.ts';
import {
  anonFile,
  BIN,
  bashCpuMs,
  benchRoot,
  exited,
  median,
  mib,
  type ProcMemory,
  pollUntil,
  procMemory,
  type Row,
  ready,
  removeFixture,
  sleep,
} from './lib.ts';

/**
 * The realistic agent: 50 `vault:` KV v2 secrets from a real OpenBao server on loopback (token auth),
 * rendered as raw files, JSON, env files and templates like the `file:` benchmark's mix.
 *
 * - start-up: `agent --once`, spawn → exit 0, next to a bare `node -e 0` spawn → exit, interleaved
 *   (bare, agent, bare, agent, …) so that the machine's load hits both alike; medians. Also the CPU
 *   time of both (perf stat's task-clock when perf is installed), which load disturbs less.
 * - memory: resident memory of a long-running agent with `refresh: 5m` and with `refresh: 2s`, after
 *   it has run for a while (samples once a second; the figure is the median of the last 10 s).
 *
 * Several Node binaries and several builds can be compared in one interleaved session:
 *   SIDEKEY_BENCH_NODES=/path/to/node20,/path/to/node24   (default: the Node running the bench, with
 *     the option the container image starts Node with, IMAGE_NODE_OPTION in sidecar/v8-flags.ts;
 *     an entry may carry Node/V8 options after the path, `/path/to/node --no-maglev`, and environment
 *     variables before it, `NODE_COMPILE_CACHE=/tmp/cc /path/to/node`)
 *   SIDEKEY_BENCH_BINS=bin/sidekey.js,/tmp/other/bin/sidekey.js   (default: this tree's bin/sidekey.js)
 *   SIDEKEY_BENCH_RUNS=21 (start-up runs per variant), SIDEKEY_BENCH_RSS_SECONDS=60
 */

const N = 50;
const SECTION = `agent (${N} secrets, vault: OpenBao)`;
const RUNS = Number(process.env.SIDEKEY_BENCH_RUNS ?? 15);
const RSS_SECONDS = Number(process.env.SIDEKEY_BENCH_RSS_SECONDS ?? 60);

export interface Variant {
  label: string;
  node: string;
  /** Options before the script, e.g. V8 flags under trial. */
  nodeArgs: string[];
  /** Extra environment variables. */
  env: Record<string, string>;
  bin: string;
}

/** Every combination of the Node binaries and builds asked for (see the module comment). */
export function variants(env = process.env): Variant[] {
  const nodes = (env.SIDEKEY_BENCH_NODES ?? `${process.execPath} ${IMAGE_NODE_OPTION}`)
    .split(',')
    .filter(Boolean);
  const bins = (env.SIDEKEY_BENCH_BINS ?? BIN).split(',').filter(Boolean);
  const out: Variant[] = [];
  for (const entry of nodes) {
    const words = entry.trim().split(/\s+/);
    const env: Record<string, string> = {};
    while (/^[A-Z_]+=/.test(words[0] ?? '')) {
      const [k, ...v] = words.shift()!.split('=');
      env[k!] = v.join('=');
    }
    const [node, ...nodeArgs] = words as [string, ...string[]];
    const v = [
      ...Object.keys(env),
      spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim(),
      ...nodeArgs,
    ].join(' ');
    for (const bin of bins) {
      const label = bins.length > 1 ? `${v} ${path.relative(process.cwd(), bin) || bin}` : v;
      out.push({ label, node, nodeArgs, env, bin: path.resolve(bin) });
    }
  }
  return out;
}

export interface VaultFixture {
  dir: string;
  bao: OpenBao;
  /**
   * The spec as the webhook passes it (`SIDEKEY_SPEC`, JSON) for a refresh interval and an output
   * directory (relative to `dir`, the agent's working directory).
   */
  specJson(refresh: string, out?: string): string;
  /** Default output directory. */
  out: string;
}

/** OpenBao with `n` KV v2 secrets and a spec reading them with a non-root token. */
export async function vaultFixture(n = N): Promise<VaultFixture> {
  const bao = await startOpenBao();
  const dir = mkdtempSync(path.join(benchRoot(), 'sidekey-bench-vault-'));
  try {
    for (let i = 0; i < n; i++) {
      await bao.api('POST', `secret/data/bench/k${i}`, {
        data: { user: `user-${i}`, password: `password-${i}`, port: String(5000 + i) },
      });
    }
    await bao.api('PUT', 'sys/policies/acl/bench', {
      policy: 'path "secret/data/bench/*" { capabilities = ["read"] }',
    });
    const token = await bao.api('POST', 'auth/token/create', { policies: ['bench'], ttl: '24h' });
    writeFileSync(path.join(dir, 'vault-token'), token.auth.client_token, { mode: 0o600 });
  } catch (e) {
    await bao.stop();
    throw e;
  }
  return {
    dir,
    bao,
    out: path.join(dir, 'out'),
    specJson(refresh, out = 'out') {
      const secrets: Record<string, Record<string, string>> = {};
      for (let i = 0; i < n; i++) {
        const ref = `vault:secret/data/bench/k${i}`;
        const kind = i % 10;
        if (kind < 6) secrets[`s${i}`] = { ref: `${ref}#password` };
        else if (kind < 8) secrets[`s${i}`] = { ref, format: 'json', file: `s${i}.json` };
        else if (kind < 9) secrets[`s${i}`] = { ref, format: 'env', file: `s${i}.env` };
        else {
          secrets[`s${i}`] = {
            ref,
            file: `conf/s${i}.yaml`,
            template: 'url: postgres://{{ data.user }}:{{ data.password }}@db:{{ data.port }}/app',
          };
        }
      }
      return JSON.stringify({
        apiVersion: 'sidekey.io/v1',
        kind: 'SecretSpec',
        output: { dir: out },
        refresh,
        backends: { vault: { addr: bao.addr, authMethod: 'token', tokenFile: 'vault-token' } },
        secrets,
      });
    },
  };
}

export async function run(): Promise<Row[]> {
  const vs = variants();
  const fx = await vaultFixture();
  try {
    const rows = await startup(fx, vs);
    for (const refresh of ['5m', '2s']) rows.push(...(await memory(fx, vs, refresh)));
    return rows;
  } finally {
    await fx.bao.stop();
    removeFixture(fx.dir);
  }
}

const HAS_PERF = spawnSync('perf', ['--version']).status === 0;

/** CPU time (ms) of one run of `args`, from perf stat's task-clock, else from bash's `times`. */
function cpuMs(node: string, args: string[], cwd: string, env: Record<string, string> = {}): number {
  if (HAS_PERF) {
    const r = spawnSync('perf', ['stat', '-x', ',', '-e', 'task-clock', node, ...args], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
    const line = r.stderr.split('\n').find((l) => l.includes('task-clock'));
    if (r.status !== 0 || !line) throw new Error(`perf stat failed (${r.status}): ${r.stderr.slice(-200)}`);
    return Number(line.split(',')[0]);
  }
  return bashCpuMs([node, ...args], { cwd, env });
}

async function wallMs(
  node: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<number> {
  const t0 = performance.now();
  const child = spawn(node, args, { cwd, stdio: 'ignore', env: { ...process.env, ...env } });
  const code = await exited(child);
  const dt = performance.now() - t0;
  if (code !== 0) throw new Error(`${path.basename(node)} ${args.join(' ')} exited ${code}`);
  return dt;
}

export interface StartupFigures {
  bare: number[];
  once: number[];
  bareCpu: number[];
  onceCpu: number[];
}

/** Interleaved runs of every variant: bare node, agent --once, bare node, agent --once, … */
export async function measureStartup(
  fx: VaultFixture,
  vs: readonly Variant[],
  runs = RUNS,
): Promise<Map<Variant, StartupFigures>> {
  const spec = fx.specJson('5m');
  const res = new Map<Variant, StartupFigures>(
    vs.map((v) => [v, { bare: [], once: [], bareCpu: [], onceCpu: [] }]),
  );
  const onceArgs = (v: Variant) => [...v.nodeArgs, v.bin, 'agent', '--once'];
  const onceEnv = (v: Variant) => ({ ...v.env, SIDEKEY_SPEC: spec });
  // One warm-up of each (page cache, OpenBao's own caches), not counted.
  for (const v of vs) await wallMs(v.node, onceArgs(v), fx.dir, onceEnv(v));
  for (let i = 0; i < runs; i++) {
    for (const v of vs) {
      const r = res.get(v)!;
      r.bare.push(await wallMs(v.node, ['-e', '0'], fx.dir));
      rmSync(fx.out, { recursive: true, force: true });
      r.once.push(await wallMs(v.node, onceArgs(v), fx.dir, onceEnv(v)));
      r.bareCpu.push(cpuMs(v.node, ['-e', '0'], fx.dir));
      rmSync(fx.out, { recursive: true, force: true });
      r.onceCpu.push(cpuMs(v.node, onceArgs(v), fx.dir, onceEnv(v)));
    }
  }
  return res;
}

async function startup(fx: VaultFixture, vs: readonly Variant[]): Promise<Row[]> {
  const res = await measureStartup(fx, vs);
  const load = `load avg ${os.loadavg()[0]!.toFixed(1)} on ${os.availableParallelism()} cores`;
  const rows: Row[] = [];
  for (const [v, r] of res) {
    const diffs = r.once.map((t, i) => t - r.bare[i]!);
    rows.push(
      {
        section: `${SECTION}, ${v.label}`,
        metric: 'agent --once: spawn → exit 0, beyond a bare `node -e 0`',
        value: median(diffs),
        unit: 'ms',
        max: 120,
        note: `median of ${diffs.length} interleaved pairs; agent ${median(r.once).toFixed(0)} ms, bare node ${median(r.bare).toFixed(0)} ms (${load})`,
      },
      {
        section: `${SECTION}, ${v.label}`,
        metric: 'agent --once: CPU time beyond a bare `node -e 0`',
        value: median(r.onceCpu) - median(r.bareCpu),
        unit: 'ms',
        note: `${HAS_PERF ? 'perf stat task-clock' : 'user+sys'}, medians: agent ${median(r.onceCpu).toFixed(0)} ms, bare node ${median(r.bareCpu).toFixed(0)} ms`,
      },
    );
  }
  return rows;
}

export interface RssFigures {
  /** Median VmRSS (KiB) over the last 10 samples. */
  rss: number;
  anon: number;
  file: number;
  hwm: number;
}

/** A long-running agent per variant, all at once (same load), sampled every second. */
export async function measureRss(
  fx: VaultFixture,
  vs: readonly Variant[],
  refresh: string,
  seconds = RSS_SECONDS,
): Promise<Map<Variant, RssFigures>> {
  const children = vs.map((v, i) => {
    // Each agent writes to its own directory.
    const out = path.join(fx.dir, `rss-${refresh}-${i}`);
    rmSync(out, { recursive: true, force: true });
    const child = spawn(v.node, [...v.nodeArgs, v.bin, 'agent'], {
      cwd: fx.dir,
      stdio: 'ignore',
      env: { ...process.env, ...v.env, SIDEKEY_SPEC: fx.specJson(refresh, path.basename(out)) },
    });
    return { v, child, out };
  });
  try {
    for (const c of children) await pollUntil(() => ready(c.out), 30_000);
    const samples = new Map<Variant, ProcMemory[]>(vs.map((v) => [v, []]));
    for (let t = 0; t < seconds; t++) {
      await sleep(1000);
      for (const c of children) {
        if (c.child.exitCode !== null) throw new Error(`agent (${c.v.label}) exited ${c.child.exitCode}`);
        samples.get(c.v)!.push(procMemory(c.child.pid!));
      }
    }
    return new Map(
      [...samples].map(([v, s]) => {
        const last = s.slice(-10);
        return [
          v,
          {
            rss: median(last.map((x) => x.rss)),
            anon: median(last.map((x) => x.anon)),
            file: median(last.map((x) => x.file)),
            hwm: s.at(-1)!.hwm,
          },
        ];
      }),
    );
  } finally {
    for (const c of children) {
      c.child.kill('SIGTERM');
      await exited(c.child);
    }
  }
}

async function memory(fx: VaultFixture, vs: readonly Variant[], refresh: string): Promise<Row[]> {
  const res = await measureRss(fx, vs, refresh);
  return [...res].map(([v, m]) => ({
    section: `${SECTION}, ${v.label}`,
    metric: `agent RSS, refresh ${refresh} (VmRSS after ${RSS_SECONDS} s)`,
    value: mib(m.rss),
    unit: 'MiB',
    max: refresh === '2s' ? 56 : 48,
    note: `median of the last 10 s: ${anonFile(m)}; peak ${mib(m.hwm).toFixed(1)} MiB`,
  }));
}
