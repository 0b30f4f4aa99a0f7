import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isSkError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { validateRelativePath } from '../../src/paths.js';
import { AtomicWriter, DATA_DIR, DATA_TMP, type FileProjection } from '../../src/writer.js';

/** File-system traps found by the fault drills (issue 14, item 5): each failed before its fix. */

let root: string;
beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'sk-writer-traps-'));
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const payload = (entries: Record<string, string>): Map<string, FileProjection> =>
  new Map(Object.entries(entries).map(([p, v]) => [p, { data: Buffer.from(v), mode: 0o440 }]));

/** A logger recording every line, to check what the writer says. */
function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const rec = (o: unknown, m?: string) => {
    lines.push(JSON.stringify([o, m]));
  };
  const log = {
    debug: rec,
    info: rec,
    warn: rec,
    error: rec,
    trace: rec,
    fatal: rec,
    child: () => log,
  } as unknown as Logger;
  return { log, lines };
}

describe('the writer and a hostile or dirty output directory', () => {
  it('a ..data symlink planted to point outside is not read (nor its files named) and is replaced', async () => {
    const outside = path.join(root, 'outside');
    await fs.mkdir(outside);
    await fs.writeFile(path.join(outside, 'private-file-name'), 'not ours');
    const dir = path.join(root, 'out');
    await fs.mkdir(dir);
    await fs.symlink('../outside', path.join(dir, DATA_DIR));
    const { log, lines } = recordingLog();
    const w = new AtomicWriter({ dir, log });
    const r = await w.write(payload({ a: '1' }));
    expect(r.written).toBe(true);
    expect(r.changed).toEqual(['a']);
    expect(lines.join('\n')).not.toContain('private-file-name');
    expect(await fs.readlink(path.join(dir, DATA_DIR))).toBe(r.generation);
    // the planted target is left alone
    expect(await fs.readFile(path.join(outside, 'private-file-name'), 'utf8')).toBe('not ours');
  });

  it('an absolute ..data symlink is treated the same way', async () => {
    const dir = path.join(root, 'out');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(root, 'elsewhere'), 'not ours');
    await fs.symlink(root, path.join(dir, DATA_DIR));
    const r = await new AtomicWriter({ dir }).write(payload({ a: '1' }));
    expect(r.changed).toEqual(['a']);
  });

  it('a leftover ..data_tmp of any kind does not make writes fail', async () => {
    for (const leftover of ['dir', 'file', 'dangling'] as const) {
      const dir = path.join(root, leftover);
      await fs.mkdir(dir);
      const tmp = path.join(dir, DATA_TMP);
      if (leftover === 'dir') {
        await fs.mkdir(tmp);
        await fs.writeFile(path.join(tmp, 'x'), 'junk');
      } else if (leftover === 'file') await fs.writeFile(tmp, 'junk');
      else await fs.symlink('nowhere', tmp);
      const w = new AtomicWriter({ dir });
      const r = await w.write(payload({ a: '1' }));
      expect(r.written).toBe(true);
      expect(await fs.readFile(path.join(dir, 'a'), 'utf8')).toBe('1');
      expect((await w.write(payload({ a: '2' }))).written).toBe(true);
    }
  });

  it('creates the output directory 0755 whatever the umask, as documented', async () => {
    const old = process.umask(0o077);
    try {
      const dir = path.join(root, 'new', 'out');
      await new AtomicWriter({ dir }).write(payload({ a: '1' }));
      expect((await fs.stat(dir)).mode & 0o777).toBe(0o755);
      expect((await fs.stat(path.join(root, 'new'))).mode & 0o777).toBe(0o755);
      // an existing directory keeps its mode: it is the operator's
      await fs.chmod(dir, 0o750);
      await new AtomicWriter({ dir }).write(payload({ a: '2' }));
      expect((await fs.stat(dir)).mode & 0o777).toBe(0o750);
    } finally {
      process.umask(old);
    }
  });
});

describe('file names the writer cannot write are refused at validation', () => {
  const refuse = (p: string, why: string) => {
    try {
      validateRelativePath(p, 'sidekey.io/file-db');
      expect.unreachable();
    } catch (e) {
      expect(isSkError(e) && e.code).toBe('SK_ERR_PATH_INVALID');
      expect((e as Error).message).toContain(why);
    }
  };

  it('a segment is limited to 255 bytes, not characters (128 × "é" is 256 bytes)', async () => {
    refuse('é'.repeat(128), 'longer than 255 bytes');
    expect(validateRelativePath('é'.repeat(127), 'f')).toBe('é'.repeat(127));
    // and what passes validation can be written
    await new AtomicWriter({ dir: root }).write(payload({ ['é'.repeat(127)]: '1' }));
  });

  it.each([
    ['a\nb', 'newline'],
    ['a\rb', 'control character'],
    ['a\tb', 'control character'],
    ['a\u007fb', 'control character'],
  ])('refuses %j (it would break SIDEKEY_CHANGED_FILES and logs)', (p, why) => {
    refuse(p, why);
  });
});
