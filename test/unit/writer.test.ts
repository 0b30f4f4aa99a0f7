import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SkError } from '../../src/errors.js';
import { fingerprint } from '../../src/fingerprint.js';
import { validateRelativePath } from '../../src/paths.js';
import {
  AtomicWriter,
  DATA_DIR,
  type FileProjection,
  STATUS_FILE,
  type StatusDocument,
} from '../../src/writer.js';

const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sk-writer-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function payload(entries: Record<string, string | [string, number]>): Map<string, FileProjection> {
  const m = new Map<string, FileProjection>();
  for (const [p, v] of Object.entries(entries)) {
    const [text, mode] = typeof v === 'string' ? [v, 0o440] : v;
    m.set(p, { data: Buffer.from(text), mode });
  }
  return m;
}

async function generations(d: string): Promise<string[]> {
  return (await fs.readdir(d)).filter((n) => n.startsWith('..') && n !== DATA_DIR).sort();
}

describe('AtomicWriter', () => {
  it('writes files as symlinks through ..data into one generation directory, with per-file modes', async () => {
    const w = new AtomicWriter({ dir: path.join(dir, 'out') });
    const r = await w.write(
      payload({ 'db-password': CANARY, 'api.key': ['k', 0o400], 'app.env': ['A=1', 0o644] }),
    );
    const out = path.join(dir, 'out');
    expect(r.written).toBe(true);
    expect(r.changed).toEqual(['api.key', 'app.env', 'db-password']);
    expect(await fs.readlink(path.join(out, DATA_DIR))).toBe(r.generation);
    expect(r.generation).toMatch(/^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\./);
    for (const name of ['db-password', 'api.key', 'app.env']) {
      expect(await fs.readlink(path.join(out, name))).toBe(`${DATA_DIR}/${name}`);
    }
    // booleans: a failing assertion must not print the canary
    expect((await fs.readFile(path.join(out, 'db-password'), 'utf8')) === CANARY).toBe(true);
    expect((await fs.stat(path.join(out, 'db-password'))).mode & 0o777).toBe(0o440);
    expect((await fs.stat(path.join(out, 'api.key'))).mode & 0o777).toBe(0o400);
    expect((await fs.stat(path.join(out, 'app.env'))).mode & 0o777).toBe(0o644);
    expect((await fs.stat(path.join(out, r.generation))).mode & 0o777).toBe(0o755);
    // nothing else in the directory: the generation, ..data and the three names
    expect((await fs.readdir(out)).sort()).toEqual(
      [r.generation, DATA_DIR, 'api.key', 'app.env', 'db-password'].sort(),
    );
  });

  it('applies the mode exactly, whatever the umask', async () => {
    const old = process.umask(0o077);
    try {
      const w = new AtomicWriter({ dir });
      await w.write(payload({ a: ['x', 0o664], 'n/b': ['y', 0o444] }));
      expect((await fs.stat(path.join(dir, 'a'))).mode & 0o777).toBe(0o664);
      expect((await fs.stat(path.join(dir, 'n'))).mode & 0o777).toBe(0o755);
    } finally {
      process.umask(old);
    }
  });

  it('links a nested path through its top-level directory', async () => {
    const w = new AtomicWriter({ dir });
    await w.write(payload({ 'tls/tls.crt': 'CRT', 'tls/tls.key': 'KEY', 'deep/a/b/c': 'C' }));
    expect(await fs.readlink(path.join(dir, 'tls'))).toBe(`${DATA_DIR}/tls`);
    expect(await fs.readlink(path.join(dir, 'deep'))).toBe(`${DATA_DIR}/deep`);
    expect(await fs.readFile(path.join(dir, 'tls/tls.key'), 'utf8')).toBe('KEY');
    expect(await fs.readFile(path.join(dir, 'deep/a/b/c'), 'utf8')).toBe('C');
  });

  it('writes only on change: the same payload keeps the generation', async () => {
    const w = new AtomicWriter({ dir });
    const first = await w.write(payload({ a: '1', b: '2' }));
    const again = await w.write(payload({ a: '1', b: '2' }));
    expect(again).toEqual({ written: false, changed: [], generation: first.generation });
    // a fresh writer (a restarted agent) compares with what is on disk
    const w2 = new AtomicWriter({ dir });
    expect((await w2.write(payload({ a: '1', b: '2' }))).written).toBe(false);
    // a mode change alone is a change
    const modeOnly = await w2.write(payload({ a: ['1', 0o400], b: '2' }));
    expect(modeOnly.written).toBe(true);
    expect(modeOnly.changed).toEqual(['a']);
  });

  it('swaps in a new generation, removes the old one and names only the changed files', async () => {
    const w = new AtomicWriter({ dir, graceMs: 0 });
    const g1 = await w.write(payload({ a: '1', b: '2' }));
    const g2 = await w.write(payload({ a: '1', b: '3' }));
    expect(g2.changed).toEqual(['b']);
    expect(g2.generation).not.toBe(g1.generation);
    expect(await generations(dir)).toEqual([g2.generation]);
    expect(await fs.readFile(path.join(dir, 'b'), 'utf8')).toBe('3');
  });

  it('removes user-visible names that left the payload and adds new ones', async () => {
    const w = new AtomicWriter({ dir, graceMs: 0 });
    await w.write(payload({ a: '1', 'old/x': '2' }));
    const r = await w.write(payload({ a: '1', c: '3' }));
    expect(r.changed).toEqual(['c', 'old/x']);
    expect((await fs.readdir(dir)).sort()).toEqual([r.generation, DATA_DIR, 'a', 'c'].sort());
  });

  it('keeps a replaced generation readable for the grace period, then removes it without another write', async () => {
    const w = new AtomicWriter({ dir, graceMs: 150 });
    const g1 = await w.write(payload({ a: '1' }));
    const g2 = await w.write(payload({ a: '2' }));
    // a reader that resolved ..data just before the swap still finds its file
    expect(await fs.readFile(path.join(dir, g1.generation, 'a'), 'utf8')).toBe('1');
    expect(await generations(dir)).toEqual([g1.generation, g2.generation].sort());
    const end = Date.now() + 3000;
    while ((await generations(dir)).length > 1 && Date.now() < end)
      await new Promise((r) => setTimeout(r, 20));
    expect(await generations(dir)).toEqual([g2.generation]);
  });

  it('cleans up generations and temp links a crash left behind', async () => {
    const w = new AtomicWriter({ dir, graceMs: 0 });
    await w.write(payload({ a: '1' }));
    await fs.mkdir(path.join(dir, '..2020_01_01_00_00_00.crash1'));
    await fs.writeFile(path.join(dir, '..2020_01_01_00_00_00.crash1', 'a'), 'junk');
    await fs.symlink('..2020_01_01_00_00_00.crash1', path.join(dir, '..data_tmp'));
    const r = await w.write(payload({ a: '2' }));
    expect(await generations(dir)).toEqual([r.generation]);
    // an unchanged write (a restarted agent) cleans up too
    await fs.mkdir(path.join(dir, '..2020_01_01_00_00_00.crash2'));
    expect((await new AtomicWriter({ dir }).write(payload({ a: '2' }))).written).toBe(false);
    expect(await generations(dir)).toEqual([r.generation]);
  });

  it('re-creates a deleted user-visible symlink even when the content is unchanged', async () => {
    const w = new AtomicWriter({ dir });
    await w.write(payload({ a: '1' }));
    await fs.unlink(path.join(dir, 'a'));
    const r = await w.write(payload({ a: '1' }));
    expect(r.written).toBe(false);
    expect(await fs.readFile(path.join(dir, 'a'), 'utf8')).toBe('1');
  });

  it('never clobbers a user file that is in the way, and writes nothing then', async () => {
    await fs.writeFile(path.join(dir, 'a'), 'mine');
    const w = new AtomicWriter({ dir });
    const err = await w.write(payload({ a: '1' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SkError);
    expect((err as SkError).code).toBe('SK_ERR_WRITE');
    expect(await fs.readFile(path.join(dir, 'a'), 'utf8')).toBe('mine');
    expect(await fs.readdir(dir)).toEqual(['a']);
  });

  it.each([
    ['..data', 'SK_ERR_PATH_INVALID'],
    ['..hidden', 'SK_ERR_PATH_INVALID'],
    ['.sidekey-status.json', 'SK_ERR_PATH_INVALID'],
    ['.sidekey-status.json/x', 'SK_ERR_PATH_INVALID'],
    ['../escape', 'SK_ERR_PATH_INVALID'],
    ['/etc/passwd', 'SK_ERR_PATH_INVALID'],
    ['a//b', 'SK_ERR_PATH_INVALID'],
  ])('refuses the reserved or unsafe name %s with %s and writes nothing', async (name, code) => {
    const w = new AtomicWriter({ dir });
    const err = await w.write(payload({ ok: '1', [name]: CANARY })).catch((e: unknown) => e);
    expect((err as SkError).code).toBe(code);
    expect(String((err as SkError).message)).not.toContain(CANARY);
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it('refuses a file that is also the directory of another, and a bad mode', async () => {
    const w = new AtomicWriter({ dir });
    await expect(w.write(payload({ a: '1', 'a/b': '2' }))).rejects.toMatchObject({
      code: 'SK_ERR_PATH_INVALID',
    });
    await expect(w.write(payload({ a: ['1', 0o4755] }))).rejects.toMatchObject({
      code: 'SK_ERR_MODE_INVALID',
    });
  });

  it('validateRelativePath refuses the status file name', () => {
    expect(() => validateRelativePath('.sidekey-status.json', 'secrets.x.file')).toThrow(/reserved/);
    expect(validateRelativePath('conf/.sidekey-status.json', 'secrets.x.file')).toBe(
      'conf/.sidekey-status.json',
    );
  });

  it('keeps the old generation live when writing the new one fails', async () => {
    const w = new AtomicWriter({ dir });
    const g1 = await w.write(payload({ a: '1' }));
    // Root ignores permission bits, so fail step 6 with a path longer than PATH_MAX instead.
    const deep = Array.from({ length: 20 }, () => 'x'.repeat(250)).join('/');
    const err = await w.write(payload({ a: '2', [deep]: 'y' })).catch((e: unknown) => e);
    expect((err as SkError).code).toBe('SK_ERR_WRITE');
    expect(await fs.readlink(path.join(dir, DATA_DIR))).toBe(g1.generation);
    expect(await fs.readFile(path.join(dir, 'a'), 'utf8')).toBe('1');
    expect(await generations(dir)).toEqual([g1.generation]);
  });

  it('after a restart (a new process, a new fingerprint key) rewrites nothing when the files are unchanged', async () => {
    // Fingerprints are keyed per process: the comparison must re-read the files, not trust old hashes.
    const script = path.join(dir, 'restart.mts');
    await fs.writeFile(
      script,
      `import { AtomicWriter } from ${JSON.stringify(path.resolve('src/writer.ts'))};
       import { fingerprint } from ${JSON.stringify(path.resolve('src/fingerprint.ts'))};
       const w = new AtomicWriter({ dir: process.argv[2] });
       const r = await w.write(new Map([['a', { data: Buffer.from(process.argv[3]), mode: 0o440 }]]));
       process.stdout.write(JSON.stringify({ written: r.written, fp: fingerprint(process.argv[3]) }));`,
    );
    const out = path.join(dir, 'out');
    const run = (content: string) => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', script, out, content], { encoding: 'utf8' });
      expect(r.error).toBeUndefined();
      expect(r.status).toBe(0);
      return JSON.parse(r.stdout) as { written: boolean; fp: string };
    };
    const first = run('1234');
    expect(first.written).toBe(true);
    const gen = await fs.readlink(path.join(out, DATA_DIR));
    const restarted = run('1234');
    expect(restarted.fp).not.toBe(first.fp); // really another key
    expect(restarted.written).toBe(false);
    expect(await fs.readlink(path.join(out, DATA_DIR))).toBe(gen);
    expect(run('1235').written).toBe(true);
  });

  it('chowns files to uid/gid when permitted', async () => {
    const w = new AtomicWriter({ dir, uid: 4321, gid: 4322 });
    await w.write(payload({ a: '1' }));
    const st = await fs.stat(path.join(dir, 'a'));
    if (process.getuid?.() === 0) {
      expect([st.uid, st.gid]).toEqual([4321, 4322]);
    } else {
      // not root: EPERM is skipped and the file keeps the process's owner
      expect(st.uid).toBe(process.getuid?.());
    }
  });

  it('as a non-root user, skips a chown that is not permitted instead of failing', async () => {
    // A real process running as nobody (we are root here, as in CI) writes with uid/gid 0 asked.
    await fs.chmod(dir, 0o777);
    const script = path.join(dir, 'w.mts');
    await fs.writeFile(
      script,
      `import { AtomicWriter } from ${JSON.stringify(path.resolve('src/writer.ts'))};
       const w = new AtomicWriter({ dir: process.argv[2], uid: 0, gid: 0 });
       const r = await w.write(new Map([['a', { data: Buffer.from('x'), mode: 0o440 }]]));
       process.stdout.write(JSON.stringify({ written: r.written }));`,
    );
    const r = spawnSync(process.execPath, ['--import', 'tsx', script, path.join(dir, 'out')], {
      uid: 65534,
      gid: 65534,
      encoding: 'utf8',
    });
    expect(r.error).toBeUndefined();
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 0, stdout: '{"written":true}' });
    const st = await fs.stat(path.join(dir, 'out', 'a'));
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([65534, 65534, 0o440]);
  });

  it('writes the status file atomically with mode 0444, and no values', async () => {
    const w = new AtomicWriter({ dir });
    const data = Buffer.from(CANARY);
    await w.write(new Map([['db', { data, mode: 0o440 }]]));
    const status: StatusDocument = {
      apiVersion: 'sidekey.io/v1',
      ready: true,
      updatedAt: new Date(0).toISOString(),
      secrets: {
        db: {
          file: 'db',
          version: 'v3',
          fingerprint: fingerprint(data),
          fetchedAt: new Date(0).toISOString(),
        },
      },
    };
    await w.writeStatus(status);
    await w.writeStatus({ ...status, ready: false });
    const text = await fs.readFile(path.join(dir, STATUS_FILE), 'utf8');
    expect(JSON.parse(text)).toEqual({ ...status, ready: false });
    expect(text).not.toContain(CANARY);
    expect(fingerprint(data)).toMatch(/^[0-9a-f]{16}$/);
    expect((await fs.stat(path.join(dir, STATUS_FILE))).mode & 0o777).toBe(0o444);
    // no temp files left; the status file survives generation swaps
    await w.write(new Map([['db', { data: Buffer.from('other'), mode: 0o440 }]]));
    const names = await fs.readdir(dir);
    expect(names.filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(names).toContain(STATUS_FILE);
  });
});

describe('AtomicWriter (property)', () => {
  it('after any sequence of writes the directory shows exactly the last payload', async () => {
    const segment = fc.constantFrom('a', 'b', 'c', 'conf', 'tls', 'x.key');
    const filePath = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('/'));
    const payloadArb = fc
      .dictionary(
        filePath,
        fc.record({ text: fc.string({ maxLength: 20 }), mode: fc.constantFrom(0o400, 0o440, 0o644) }),
        {
          maxKeys: 5,
        },
      )
      // drop files that are the directory of another one (refused by design, tested above)
      .map((d) => Object.entries(d).filter(([p]) => !Object.keys(d).some((q) => q.startsWith(`${p}/`))));
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(payloadArb, { minLength: 1, maxLength: 4 }), async (seq) => {
        const d = path.join(dir, `p${run++}`);
        const w = new AtomicWriter({ dir: d, graceMs: 0 });
        for (const entries of seq) {
          const r = await w.write(
            new Map(entries.map(([p, f]) => [p, { data: Buffer.from(f.text), mode: f.mode }])),
          );
          for (const [p, f] of entries) {
            expect(await fs.readFile(path.join(d, p), 'utf8')).toBe(f.text);
            expect((await fs.stat(path.join(d, p))).mode & 0o777).toBe(f.mode);
          }
          const visible = (await fs.readdir(d)).filter((n) => !n.startsWith('..')).sort();
          expect(visible).toEqual([...new Set(entries.map(([p]) => p.split('/')[0]!))].sort());
          expect(await generations(d)).toEqual([r.generation]);
        }
      }),
      { numRuns: 60 },
    );
  });
});
