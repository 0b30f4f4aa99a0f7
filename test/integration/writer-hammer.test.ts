import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AtomicWriter, type FileProjection } from '../../src/writer.js';

/**
 * The torn-file test: separate reader processes hammer the output directory while the writer performs
 * 1,000 rotations of the whole file set. Every file is self-validating (a header with its generation,
 * its body's length and SHA-256), so a torn, partial or corrupt file shows in either reader.
 *
 * What is atomic (docs/files.md, "Reading a consistent set"), checked by two readers at once:
 * - `resolved`: resolves `..data` once per read of the set and opens every file under that generation
 *   directory. It must never see two generations mixed.
 * - `per-file`: opens each file through its own user-visible symlink (`<dir>/<name>`, which resolves
 *   `..data` again on every open), as most apps do. Each file is whole, but a rotation between two
 *   opens mixes generations in the set: counted and printed, not hidden.
 */

const ROTATIONS = 1000;
const FILES = ['db-password', 'app.env', 'tls/tls.crt', 'tls/tls.key', 'conf/deep/settings.json'];

// Plain JS so the reader runs as its own node process without a build step.
const READER = `
import fs from 'node:fs';
import { createHash } from 'node:crypto';
const [mode, dir, stopFile, ...files] = process.argv.slice(2);
const s = { mode, reads: 0, sets: 0, mixedSets: 0, generations: new Set(), errors: [] };
const fail = (msg) => { if (s.errors.length < 20) s.errors.push(msg); };
function check(name, buf) {
  const nl = buf.indexOf(10);
  if (nl < 0) return fail(name + ': no header (' + buf.length + ' bytes)');
  const m = /^gen=(\\d+) file=(\\S+) len=(\\d+) sha=([0-9a-f]{64})$/.exec(buf.subarray(0, nl).toString());
  if (!m) return fail(name + ': bad header');
  const body = buf.subarray(nl + 1);
  if (m[2] !== name) return fail(name + ': header names ' + m[2]);
  if (body.length !== Number(m[3])) return fail(name + ': torn, ' + body.length + ' of ' + m[3] + ' bytes');
  if (createHash('sha256').update(body).digest('hex') !== m[4]) return fail(name + ': corrupt body');
  return Number(m[1]);
}
while (!fs.existsSync(stopFile)) {
  // resolved: one readlink of ..data per set, every file opened under the generation it names
  let base = dir;
  if (mode === 'resolved') {
    try { base = dir + '/' + fs.readlinkSync(dir + '/..data'); } catch (e) { fail('..data: ' + e.code); continue; }
  }
  const gens = [];
  for (const f of files) {
    let buf;
    try { buf = fs.readFileSync(base + '/' + f); } catch (e) { fail(f + ': ' + e.code); continue; }
    s.reads++;
    const g = check(f, buf);
    if (g !== undefined) gens.push(g);
  }
  if (gens.length !== files.length) continue;
  s.sets++;
  s.generations.add(gens[0]);
  if (gens.some((g) => g !== gens[0])) s.mixedSets++;
}
process.stdout.write(JSON.stringify({ ...s, generations: s.generations.size }));
`;

interface ReaderSummary {
  mode: string;
  reads: number;
  sets: number;
  mixedSets: number;
  generations: number;
  errors: string[];
}

let dir: string;

beforeAll(async () => {
  // tmpfs where there is one: that is what the mount is in a pod.
  const base = (await fs.stat('/dev/shm').catch(() => undefined))?.isDirectory() ? '/dev/shm' : os.tmpdir();
  dir = await fs.mkdtemp(path.join(base, 'sk-hammer-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function fileFor(gen: number, name: string, i: number): FileProjection {
  // Sizes vary per generation and file, up to 192 KiB, so a torn copy would show.
  const size = 1 + ((gen * 7919 + i * 104_729) % (192 * 1024));
  const body = randomBytes(Math.ceil(size / 2))
    .toString('hex')
    .slice(0, size);
  const sha = createHash('sha256').update(body).digest('hex');
  return { data: Buffer.from(`gen=${gen} file=${name} len=${body.length} sha=${sha}\n${body}`), mode: 0o440 };
}

describe('AtomicWriter under a hammering reader', () => {
  it(`never shows a torn, partial or missing file, nor a mixed set through a resolved ..data, during ${ROTATIONS} rotations`, async () => {
    const out = path.join(dir, 'out');
    const stop = path.join(dir, 'stop');
    const script = path.join(dir, 'reader.mjs');
    await fs.writeFile(script, READER);
    const w = new AtomicWriter({ dir: out });
    const payload = (gen: number) => new Map(FILES.map((f, i) => [f, fileFor(gen, f, i)]));
    await w.write(payload(0));

    const readers = (['resolved', 'per-file'] as const).map((mode) => {
      const child = spawn(process.execPath, [script, mode, out, stop, ...FILES], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let stdout = '';
      child.stdout!.on('data', (c: Buffer) => {
        stdout += c.toString();
      });
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      return { mode, exited, summary: () => JSON.parse(stdout) as ReaderSummary };
    });

    const started = Date.now();
    let written = 0;
    for (let gen = 1; gen <= ROTATIONS; gen++) {
      if ((await w.write(payload(gen))).written) written++;
    }
    const elapsed = Date.now() - started;
    await fs.writeFile(stop, '');
    for (const r of readers) expect(await r.exited).toBe(0);
    const [resolved, perFile] = readers.map((r) => r.summary()) as [ReaderSummary, ReaderSummary];
    const rate = (x: ReaderSummary) => ((x.mixedSets / Math.max(1, x.sets)) * 100_000).toFixed(0);
    console.log(
      `writer-hammer: ${written} rotations in ${elapsed} ms (${((written * 1000) / elapsed).toFixed(0)}/s); ` +
        `resolved-..data reader: ${resolved.sets} sets, ${resolved.mixedSets} mixed; ` +
        `per-file-symlink reader: ${perFile.sets} sets, ${perFile.mixedSets} mixed ` +
        `(${rate(perFile)} per 100k sets; each file whole, the set not)`,
    );

    // No torn, partial, corrupt or missing file for either reader.
    expect(resolved.errors).toEqual([]);
    expect(perFile.errors).toEqual([]);
    // Through a resolved ..data, the set is atomic.
    expect(resolved.mixedSets).toBe(0);
    // the readers really overlapped the rotations
    for (const r of [resolved, perFile]) {
      expect(r.sets).toBeGreaterThan(100);
      expect(r.generations).toBeGreaterThan(20);
    }
    expect(written).toBe(ROTATIONS);
    // once the grace period of replaced generations is over, only the live one is left, with ..data
    // and the user-visible names
    await new Promise((r) => setTimeout(r, 1500));
    const names = (await fs.readdir(out)).sort();
    expect(names.filter((n) => n.startsWith('..2')).length).toBe(1);
    expect(names.filter((n) => !n.startsWith('..'))).toEqual(['app.env', 'conf', 'db-password', 'tls']);
  });
});
