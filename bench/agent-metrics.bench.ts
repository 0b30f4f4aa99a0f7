import { readFileSync, writeFileSync } from 'node:fs';
import { freePort } from '../test/integration/servers/common.ts';
import {
  exited,
  makeFixture,
  median,
  mib,
  minMax,
  type ProcMemory,
  pollUntil,
  procMemory,
  type Row,
  ready,
  removeFixture,
  sleep,
  spawnSidekey,
  spawnToReady,
} from './lib.ts';

/**
 * What the metrics listener (`agent.metrics`) costs the agent: the same 50 `file:` secrets with the
 * listener off and on, side by side in one session — steady resident memory (with a scrape every
 * 5 s, as Prometheus would) and spawn → all files written. prom-client is loaded only when it is on.
 */

const N = 50;
const RUNS = 7;
const SECTION = `agent metrics listener (${N} secrets, file:)`;

export async function run(): Promise<Row[]> {
  const off = makeFixture(N);
  const on = makeFixture(N);
  try {
    const port = await freePort();
    writeFileSync(on.spec, `${readFileSync(on.spec, 'utf8')}agent:\n  metrics: { port: ${port} }\n`);
    return [...(await memory(off, on, port)), ...(await startup(off, on, port))];
  } finally {
    removeFixture(off.dir);
    removeFixture(on.dir);
  }
}

async function memory(
  off: ReturnType<typeof makeFixture>,
  on: ReturnType<typeof makeFixture>,
  port: number,
): Promise<Row[]> {
  const a = spawnSidekey(['agent', '-c', off.spec]);
  const b = spawnSidekey(['agent', '-c', on.spec]);
  try {
    await pollUntil(() => ready(off.out) && ready(on.out));
    let bytes = 0;
    // 40 s, sampled every second; the figure is the median of the last 10 samples of each (V8's memory
    // reducer shrinks an idle heap at a moment that differs between the two processes).
    const samples: Array<{ a: ProcMemory; b: ProcMemory }> = [];
    for (let i = 0; i < 40; i++) {
      await sleep(1000);
      if (i % 5 === 0) bytes = (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).length;
      samples.push({ a: procMemory(a.pid!), b: procMemory(b.pid!) });
    }
    const tail = samples.slice(-10);
    const med = (k: 'a' | 'b', f: 'rss' | 'anon') => median(tail.map((x) => x[k][f]));
    const last = {
      a: { rss: med('a', 'rss'), anon: med('a', 'anon') },
      b: { rss: med('b', 'rss'), anon: med('b', 'anon') },
    };
    const probe = await cpuPerRequest(b.pid!, port, '/readyz');
    const scrapeCpu = await cpuPerRequest(b.pid!, port, '/metrics');
    return [
      {
        section: SECTION,
        metric: 'agent CPU per startup probe: GET /readyz',
        value: probe,
        unit: 'ms',
        note: 'mean of 200 requests, from /proc/<pid>/stat; the exec probe it replaces starts a Node process (~90 ms CPU)',
      },
      {
        section: SECTION,
        metric: 'agent CPU per scrape: GET /metrics',
        value: scrapeCpu,
        unit: 'ms',
        note: `mean of 200 requests, ${N} secrets`,
      },
      {
        section: SECTION,
        metric: 'agent RSS, listener off (VmRSS, 30–40 s)',
        value: mib(last.a.rss),
        unit: 'MiB',
        note: `anon ${mib(last.a.anon).toFixed(1)} MiB; run side by side with the row below`,
      },
      {
        section: SECTION,
        metric: 'agent RSS, listener on, scraped every 5 s',
        value: mib(last.b.rss),
        unit: 'MiB',
        note: `${last.b.rss >= last.a.rss ? '+' : ''}${mib(last.b.rss - last.a.rss).toFixed(1)} MiB (anon +${mib(last.b.anon - last.a.anon).toFixed(1)}); a scrape is ${(bytes / 1024).toFixed(1)} KiB of text`,
      },
    ];
  } finally {
    a.kill('SIGTERM');
    b.kill('SIGTERM');
    await Promise.all([exited(a), exited(b)]);
  }
}

/** The agent's CPU time (user + system, from /proc) per request to `p`, in ms. */
async function cpuPerRequest(pid: number, port: number, p: string): Promise<number> {
  const cpu = () => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) * (1000 / 100); // clock ticks (USER_HZ 100) → ms
  };
  const n = 200;
  const c0 = cpu();
  for (let i = 0; i < n; i++) await (await fetch(`http://127.0.0.1:${port}${p}`)).text();
  return (cpu() - c0) / n;
}

async function startup(
  off: ReturnType<typeof makeFixture>,
  on: ReturnType<typeof makeFixture>,
  port: number,
): Promise<Row[]> {
  const t: Record<'off' | 'on', number[]> = { off: [], on: [] };
  const probe: number[] = [];
  const readyz = async () => {
    try {
      return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
    } catch {
      return false;
    }
  };
  for (let i = 0; i < RUNS; i++) {
    for (const [k, fx] of [
      ['off', off],
      ['on', on],
    ] as const) {
      const whileUp = async (t0: number) => {
        while (!(await readyz())) await sleep(1);
        probe.push(performance.now() - t0);
      };
      t[k].push(
        await spawnToReady(() => spawnSidekey(['agent', '-c', fx.spec]), fx.out, {
          whileUp: k === 'on' ? whileUp : undefined,
        }),
      );
    }
  }
  return [
    ...(['off', 'on'] as const).map((k) => ({
      section: SECTION,
      metric: `spawn → all files written, listener ${k}`,
      value: median(t[k]),
      unit: 'ms',
      note: `median of ${RUNS}, interleaved; ${minMax(t[k])}`,
    })),
    {
      section: SECTION,
      metric: 'spawn → GET /readyz answers 200 (what the startup probe waits for)',
      value: median(probe),
      unit: 'ms',
      note: `median of ${RUNS}; the listener loads after the first write, so the files never wait for it`,
    },
  ];
}
