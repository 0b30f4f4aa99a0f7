import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Row } from './lib.ts';

/**
 * `npm run bench`: builds dist/ (npm script), then runs every `bench/*.bench.ts` module one after
 * another (they measure processes; running them at once would skew the figures) and prints one table.
 * A benchmark module exports `run(): Promise<Row[]>`; to add one, drop a file next to this one.
 * `npm run bench -- agent` runs only modules whose name contains `agent`.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const filter = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const modules = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filter.length === 0 || filter.some((x) => f.includes(x)))
  .sort();

const rows: Row[] = [];
let failed = 0;
for (const file of modules) {
  process.stderr.write(`bench: ${file} …\n`);
  const t0 = performance.now();
  try {
    const mod = (await import(path.join(here, file))) as { run(): Promise<Row[]> };
    rows.push(...(await mod.run()));
  } catch (e) {
    failed += 1;
    process.stderr.write(`bench: ${file} failed: ${e instanceof Error ? e.message : String(e)}\n`);
  }
  process.stderr.write(`bench: ${file} done in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

function fmt(v: number): string {
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

const table = rows.map((r) => ({
  section: r.section,
  metric: r.metric,
  value: `${fmt(r.value)} ${r.unit}`,
  target: r.max === undefined ? '' : `≤ ${r.max} ${r.unit}`,
  ok: r.max === undefined ? '' : r.value <= r.max ? 'yes' : 'NO',
  note: r.note ?? '',
}));
const cols = ['section', 'metric', 'value', 'target', 'ok', 'note'] as const;
const width = Object.fromEntries(
  cols.map((c) => [c, Math.max(c.length, ...table.map((t) => t[c].length))]),
) as Record<(typeof cols)[number], number>;
const line = (t: Record<(typeof cols)[number], string>) =>
  `| ${cols.map((c) => t[c].padEnd(width[c])).join(' | ')} |`;
console.log(`\nsidekey benchmarks — node ${process.version}, ${process.platform}/${process.arch}\n`);
console.log(line(Object.fromEntries(cols.map((c) => [c, c])) as Record<(typeof cols)[number], string>));
console.log(`|${cols.map((c) => '-'.repeat(width[c] + 2)).join('|')}|`);
for (const t of table) console.log(line(t));
// A missed target is a figure to report, not a failure; a benchmark that crashed is.
process.exitCode = failed > 0 ? 1 : 0;
