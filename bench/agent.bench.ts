import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withOutputDir } from '../sidecar/common.ts';
import { Engine } from '../src/engine.ts';
import { loadSpecFile } from '../src/load.ts';
import { silentLogger } from '../src/log.ts';
import { defaultRegistry } from '../src/providers/index.ts';
import {
  anonFile,
  BIN,
  bashCpuMs,
  exited,
  makeFixture,
  median,
  mib,
  minMax,
  onceToExit,
  type ProcMemory,
  pollUntil,
  procMemory,
  type Row,
  ready,
  removeFixture,
  sampleMemory,
  sleep,
  spawnSidekey,
  spawnToReady,
  steadyRssRow,
} from './lib.ts';

/**
 * The agent with 50 `file:` secrets: resident memory of the real `node bin/sidekey.js agent` process
 * once it has settled, time from spawn to a complete file set, and the engine's own syncOnce.
 */

const N = 50;
const RUNS = 7;
const SECTION = `agent (${N} secrets, file:)`;

export async function run(): Promise<Row[]> {
  const fx = makeFixture(N);
  try {
    return [...(await memory(fx)), ...(await startup(fx)), ...(await inProcess(fx))];
  } finally {
    removeFixture(fx.dir);
  }
}

async function memory(fx: ReturnType<typeof makeFixture>): Promise<Row[]> {
  rmSync(fx.out, { recursive: true, force: true });
  const child = spawnSidekey(['agent', '-c', fx.spec]);
  try {
    await pollUntil(() => ready(fx.out));
    // Steady state: V8's memory reducer shrinks the heap once the process has been idle for a while
    // (10–20 s after start-up here), so sample for 30 s and take the last figure.
    const samples = await sampleMemory(child.pid!, 30);
    const last = samples.at(-1)!;
    const base = await baseline();
    return [
      steadyRssRow(SECTION, samples, 5),
      base.row,
      await esmBaseline(),
      {
        section: SECTION,
        metric: 'agent RSS above the idle `node -e` process',
        value: mib(last.rss - base.rss),
        unit: 'MiB',
        note: `anon +${mib(last.anon - base.anon).toFixed(1)}, file-backed +${mib(last.file - base.file).toFixed(1)} MiB (Node's own code pages, partly its ES module loader: see the row above)`,
      },
    ];
  } finally {
    child.kill('SIGTERM');
    await exited(child);
  }
}

/** For scale: a bare `node` process that does nothing, measured the same way. */
async function baseline(): Promise<ProcMemory & { row: Row }> {
  const m = await idleRss(['-e', 'setInterval(() => {}, 1000)']);
  return {
    ...m,
    row: {
      section: SECTION,
      metric: 'for scale: an idle `node -e` process (VmRSS)',
      value: mib(m.rss),
      unit: 'MiB',
      note: anonFile(m),
    },
  };
}

/**
 * For scale: an idle ES module that has used the built-ins any agent needs (fs/promises, a hash).
 * Node's ES module loader and those built-ins touch more of Node's own code than `node -e` does.
 */
async function esmBaseline(): Promise<Row> {
  const src =
    'await import("node:fs/promises"); (await import("node:crypto")).createHash("sha256").update("x").digest(); setInterval(() => {}, 1000);';
  const m = await idleRss(['--input-type=module', '-e', src]);
  return {
    section: SECTION,
    metric: 'for scale: an idle ES module that used fs/promises and a hash',
    value: mib(m.rss),
    unit: 'MiB',
    note: anonFile(m),
  };
}

async function idleRss(args: string[]): Promise<ProcMemory> {
  const child = spawn(process.execPath, args, { stdio: 'ignore' });
  try {
    await sleep(2000);
    return procMemory(child.pid!);
  } finally {
    child.kill();
    await exited(child);
  }
}

async function startup(fx: ReturnType<typeof makeFixture>): Promise<Row[]> {
  const toReady: number[] = [];
  const toExit: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    // For scale, measured the same way: a bare `node -e` that only creates the marker.
    rmSync(fx.out, { recursive: true, force: true });
    const tn = performance.now();
    const node = spawn(
      process.execPath,
      [
        '-e',
        'require("node:fs").mkdirSync(process.argv[1], { recursive: true })',
        path.join(fx.out, '..data'),
      ],
      { stdio: 'ignore' },
    );
    bare.push((await pollUntil(() => ready(fx.out))) - tn);
    await exited(node);

    toReady.push(await spawnToReady(() => spawnSidekey(['agent', '-c', fx.spec]), fx.out));
    toExit.push(await onceToExit(fx.spec, fx.out));
  }
  const cpu = onceCpuMs(fx.spec);
  return [
    {
      section: SECTION,
      metric: 'spawn → all files written (..data visible)',
      value: median(toReady),
      unit: 'ms',
      max: 150,
      note: `median of ${RUNS}; ${minMax(toReady)}`,
    },
    {
      section: SECTION,
      metric: 'for scale: spawn → a bare `node -e` creates ..data',
      value: median(bare),
      unit: 'ms',
      note: `median of ${RUNS}: Node's own start-up, which the figure above includes`,
    },
    {
      section: SECTION,
      metric: 'agent --once: spawn → exit 0',
      value: median(toExit),
      unit: 'ms',
      note: `median of ${RUNS}`,
    },
    {
      section: SECTION,
      metric: 'agent --once: CPU time (user + sys)',
      value: median(cpu),
      unit: 'ms',
      note: `median of ${cpu.length}; wall-clock figures above depend on the machine's load, this less so (load avg ${os.loadavg()[0]!.toFixed(1)} on ${os.availableParallelism()} cores)`,
    },
  ];
}

/** CPU time of `agent --once` (user + sys, from bash's `times`). */
function onceCpuMs(spec: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    rmSync(path.join(path.dirname(spec), 'out'), { recursive: true, force: true });
    out.push(bashCpuMs([process.execPath, BIN, 'agent', '--once', '-c', spec]));
  }
  return out;
}

async function inProcess(fx: ReturnType<typeof makeFixture>): Promise<Row[]> {
  const registry = defaultRegistry();
  const loaded = loadSpecFile(fx.spec, { registry });
  const times: number[] = [];
  let cold = 0;
  for (let i = 0; i < 15; i++) {
    const out = path.join(fx.dir, 'tmp', `run-${i}`);
    const engine = new Engine(withOutputDir(loaded, out), { registry, log: silentLogger });
    const t0 = performance.now();
    await engine.syncOnce();
    const dt = performance.now() - t0;
    await engine.stop();
    if (i === 0) cold = dt;
    else times.push(dt);
  }
  return [
    {
      section: SECTION,
      metric: 'engine.syncOnce() in-process (fetch, render, write)',
      value: median(times),
      unit: 'ms',
      max: 150,
      note: `median of ${times.length} warm runs; first (cold) run ${cold.toFixed(1)} ms`,
    },
  ];
}
