import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  exited,
  makeFixture,
  median,
  percentile,
  pollUntil,
  type Row,
  ready,
  removeFixture,
  sleep,
  spawnSidekey,
} from './lib.ts';

/**
 * `sidekey dev` with 50 `file:` secrets: time from saving a source file to the rendered file showing
 * the new value (target: within 1 s), over 20 edits.
 */

const N = 50;
const EDITS = 20;

export async function run(): Promise<Row[]> {
  const fx = makeFixture(N);
  rmSync(fx.out, { recursive: true, force: true });
  const child = spawnSidekey(['dev', '-c', fx.spec]);
  try {
    await pollUntil(() => ready(fx.out));
    await sleep(500); // let the watches settle
    const source = fx.source(0);
    const original = readFileSync(source, 'utf8');
    const target = path.join(fx.out, 's0');
    const latencies: number[] = [];
    for (let i = 1; i <= EDITS; i++) {
      const value = `password-0-edit-${i}`;
      const t0 = performance.now();
      writeFileSync(source, original.replace('password-0\n', `${value}\n`));
      const t1 = await pollUntil(() => {
        try {
          return readFileSync(target, 'utf8') === value;
        } catch {
          return false;
        }
      });
      latencies.push(t1 - t0);
      await sleep(150);
    }
    return [
      {
        section: `dev (${N} secrets, file:)`,
        metric: 'source saved → file updated',
        value: median(latencies),
        unit: 'ms',
        max: 1000,
        note: `median of ${EDITS} edits; p90 ${percentile(latencies, 90).toFixed(0)}, max ${Math.max(...latencies).toFixed(0)} ms`,
      },
    ];
  } finally {
    child.kill('SIGINT');
    await exited(child);
    removeFixture(fx.dir);
  }
}
