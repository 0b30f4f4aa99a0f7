import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { fileProvider } from '../../../src/providers/file/index.js';
import { defaultRegistry } from '../../../src/providers/index.js';
import { selectKey } from '../../../src/providers/select-key.js';
import type { SecretValue } from '../../../src/providers/types.js';
import { parseRef } from '../../../src/refs.js';
import {
  CANARY,
  catchSk,
  catchSkAsync,
  describeProviderContract,
  expectNoCanary,
  type ProviderHarness,
  recordingContext,
} from './contract.js';

const tmpRoots: string[] = [];
function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'sidekey-file-'));
  tmpRoots.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpRoots) rmSync(d, { recursive: true, force: true });
});

/** Writes like an editor that saves through a temp file and rename (the case naive watchers miss). */
function atomicWrite(p: string, content: string): void {
  const t = `${p}.tmp-${process.pid}`;
  writeFileSync(t, content);
  renameSync(t, p);
}

type MapStyle = 'yaml' | 'json' | 'dir';

function fileHarness(style: MapStyle): () => Promise<ProviderHarness> {
  return async () => {
    const dir = tmp();
    const provider = fileProvider.create({ file: { baseDir: dir } });
    const where = new Map<string, string>();
    return {
      provider,
      async putString(name, value) {
        const f = `${name}.txt`;
        atomicWrite(path.join(dir, f), value);
        where.set(name, f);
        return `file:${f}`;
      },
      async putMap(name, data) {
        if (style === 'dir') {
          const d = path.join(dir, name);
          rmSync(d, { recursive: true, force: true });
          mkdirSync(d);
          for (const [k, v] of Object.entries(data)) writeFileSync(path.join(d, k), String(v));
          where.set(name, name);
          return `file:${name}`;
        }
        const f = `${name}.${style}`;
        atomicWrite(path.join(dir, f), style === 'yaml' ? YAML.stringify(data) : JSON.stringify(data));
        where.set(name, f);
        return `file:./${f}`;
      },
      async putUnreadable(name, content) {
        const f = `${name}.${style === 'yaml' ? 'yaml' : 'json'}`;
        writeFileSync(path.join(dir, f), style === 'yaml' ? `a: [${content}\n  b: : :` : content);
        return `file:${f}`;
      },
      async remove(name) {
        rmSync(path.join(dir, where.get(name)!), { recursive: true, force: true });
      },
      missingRef: () => 'file:no/such/secret.yaml',
      async close() {},
    };
  };
}

const features = { fetchMany: false, watch: true, unreadable: true } as const;
describeProviderContract('file (YAML maps)', { ...features, nestedMaps: true }, fileHarness('yaml'));
describeProviderContract('file (JSON maps)', { ...features, nestedMaps: true }, fileHarness('json'));
describeProviderContract('file (directory maps)', { ...features, nestedMaps: false }, fileHarness('dir'));

describe('file provider', () => {
  const ctx = recordingContext();
  const dir = tmp();
  const p = fileProvider.create({ file: { baseDir: dir } });
  const fetch = (raw: string) => p.fetch(parseRef(raw), ctx);
  const data = (v: SecretValue) => {
    if (v.kind !== 'map') throw new Error(`expected a map, got ${v.kind}`);
    return v.data;
  };

  it('is registered in the default registry', () => {
    expect(defaultRegistry().get('file')).toBe(fileProvider);
  });

  it('parses dotenv files by extension and by a .env* name', async () => {
    writeFileSync(path.join(dir, 'app.env'), `# comment\nDB_PASSWORD="${CANARY}"\nexport USER=app\n`);
    writeFileSync(path.join(dir, '.env.local'), "A=1\nB='two words'\n");
    expect(data((await fetch('file:app.env')).value)).toEqual({ DB_PASSWORD: CANARY, USER: 'app' });
    expect(data((await fetch('file:.env.local')).value)).toEqual({ A: '1', B: 'two words' });
  });

  it('returns other files as bytes, unchanged', async () => {
    const bin = Buffer.from([0, 255, 1, 128, 10]);
    writeFileSync(path.join(dir, 'key.bin'), bin);
    const r = await fetch('file:key.bin');
    expect(r.value).toEqual({ kind: 'bytes', bytes: bin });
  });

  it('versions by a keyed fingerprint: stable while the content is, never the plain SHA-256', async () => {
    writeFileSync(path.join(dir, 'pin'), '1234');
    const a = await fetch('file:pin');
    expect(a.version).toMatch(/^[0-9a-f]{16}$/);
    expect(createHash('sha256').update('1234').digest('hex').startsWith(a.version)).toBe(false);
    expect((await fetch('file:pin')).version).toBe(a.version);
    writeFileSync(path.join(dir, 'pin'), '1235');
    expect((await fetch('file:pin')).version).not.toBe(a.version);
    // a directory too (names and contents)
    mkdirSync(path.join(dir, 'pins'));
    writeFileSync(path.join(dir, 'pins', 'pin'), '1234');
    const d = await fetch('file:pins');
    expect(d.version).toMatch(/^[0-9a-f]{16}$/);
    expect((await fetch('file:pins')).version).toBe(d.version);
    writeFileSync(path.join(dir, 'pins', 'pin'), '1235');
    expect((await fetch('file:pins')).version).not.toBe(d.version);
  });

  it('?parse= overrides the guess from the file name', async () => {
    writeFileSync(path.join(dir, 'creds'), '{"user":"u","password":"p"}');
    writeFileSync(path.join(dir, 'raw.yaml'), 'a: 1\n');
    expect(data((await fetch('file:creds?parse=json')).value)).toEqual({ user: 'u', password: 'p' });
    const raw = (await fetch('file:raw.yaml?parse=none')).value;
    expect(raw.kind === 'bytes' && raw.bytes.toString()).toBe('a: 1\n');
  });

  it('refuses unknown options and bad ?parse values at validation time', () => {
    const e1 = catchSk(() => fileProvider.validateRef(parseRef('file:a.yaml?stage=x'), 'secrets.a.ref'));
    expect(e1.code).toBe('SK_ERR_REF_SYNTAX');
    expect(e1.message).toContain('secrets.a.ref');
    expect(e1.message).toContain('unknown option');
    expect(e1.message).not.toContain('stage'); // an option's name is not quoted
    const e2 = catchSk(() => fileProvider.validateRef(parseRef('file:a?parse=toml'), 'secrets.a.ref'));
    expect(e2.code).toBe('SK_ERR_REF_SYNTAX');
    expect(e2.message).toContain('?parse=');
    expect(e2.message).not.toContain('toml');
  });

  it('resolves relative paths against backends.file.baseDir and accepts absolute paths', async () => {
    const other = tmp();
    writeFileSync(path.join(other, 's.yaml'), 'k: v\n');
    const q = fileProvider.create({ file: { baseDir: other } });
    expect(data((await q.fetch(parseRef('file:s.yaml'), ctx)).value)).toEqual({ k: 'v' });
    expect(data((await p.fetch(parseRef(`file:${path.join(other, 's.yaml')}`), ctx)).value)).toEqual({
      k: 'v',
    });
  });

  it('reads a directory as name → content, skipping dotfiles and subdirectories, following symlinks', async () => {
    // the layout of a mounted Kubernetes Secret: files are symlinks through ..data
    const d = path.join(dir, 'mounted');
    mkdirSync(path.join(d, '..2026_01_01'), { recursive: true });
    writeFileSync(path.join(d, '..2026_01_01', 'password'), CANARY);
    writeFileSync(path.join(d, '..2026_01_01', 'tls.crt'), 'CERT');
    symlinkSync('..2026_01_01', path.join(d, '..data'));
    symlinkSync('..data/password', path.join(d, 'password'));
    symlinkSync('..data/tls.crt', path.join(d, 'tls.crt'));
    writeFileSync(path.join(d, '.hidden'), 'x');
    mkdirSync(path.join(d, 'sub'));
    writeFileSync(path.join(d, 'sub', 'inner'), 'x');
    const r = await fetch('file:mounted');
    expect(data(r.value)).toEqual({ password: CANARY, 'tls.crt': 'CERT' });
    const crt = selectKey(r.value, parseRef('file:mounted#tls.crt'));
    expect(crt.kind === 'bytes' && crt.bytes.toString()).toBe('CERT');
  });

  it('treats empty YAML as an empty map and refuses a top-level list or scalar', async () => {
    writeFileSync(path.join(dir, 'empty.yaml'), '# nothing\n');
    writeFileSync(path.join(dir, 'list.yaml'), `- ${CANARY}\n`);
    writeFileSync(path.join(dir, 'scalar.json'), JSON.stringify(CANARY));
    expect(data((await fetch('file:empty.yaml')).value)).toEqual({});
    for (const f of ['list.yaml', 'scalar.json']) {
      const e = await catchSkAsync(() => fetch(`file:${f}`));
      expect(e.code).toBe('SK_ERR_SOURCE_UNREADABLE');
      expect(e.message).toContain('mapping');
      expectNoCanary(e);
    }
  });

  it('refuses a YAML file with duplicate keys or non-UTF-8 bytes, naming the line, not the content', async () => {
    writeFileSync(path.join(dir, 'dup.yaml'), `a: 1\nb: ${CANARY}\nb: 2\n`);
    const e = await catchSkAsync(() => fetch('file:dup.yaml'));
    expect(e.code).toBe('SK_ERR_SOURCE_UNREADABLE');
    expect(e.message).toMatch(/line 3/);
    expectNoCanary(e);
    writeFileSync(path.join(dir, 'latin1.yaml'), Buffer.from([0x61, 0x3a, 0x20, 0xe9, 0x0a]));
    const e2 = await catchSkAsync(() => fetch('file:latin1.yaml'));
    expect(e2.code).toBe('SK_ERR_SOURCE_UNREADABLE');
    expect(e2.message).toContain('UTF-8');
  });

  it('refuses a YAML file whose aliases expand too far with SK_ERR_SOURCE_UNREADABLE', async () => {
    const rows = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'];
    for (const [x, y] of ['ba', 'cb', 'dc', 'ed', 'fe']) {
      rows.push(`${x}: &${x} [${Array(9).fill(`*${y}`).join(', ')}]`);
    }
    writeFileSync(path.join(dir, 'laughs.yaml'), `${rows.join('\n')}\n`);
    const e = await catchSkAsync(() => fetch('file:laughs.yaml'));
    expect(e.code).toBe('SK_ERR_SOURCE_UNREADABLE');
    expect(e.message).toBe(
      `file:laughs.yaml: ${path.join(dir, 'laughs.yaml')} is not usable YAML (its aliases expand too far)`,
    );
  });

  it('refuses something that is neither a file nor a directory', async () => {
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const e = await catchSkAsync(() => fetch('file:pipe'));
    expect(e.code).toBe('SK_ERR_SOURCE_UNREADABLE');
    expect(e.message).toContain(fifo);
  });

  it('names the ref and the resolved path when a path component is a file', async () => {
    writeFileSync(path.join(dir, 'plain'), 'x');
    const e = await catchSkAsync(() => fetch('file:plain/inner.yaml'));
    expect(e.code).toBe('SK_ERR_SOURCE_NOT_FOUND');
    expect(e.message).toContain('file:plain/inner.yaml');
    expect(e.message).toContain(path.join(dir, 'plain/inner.yaml'));
  });

  it('watch reports a file of a mounted Secret when the kubelet swaps ..data', async () => {
    const d = tmp();
    const mnt = path.join(d, 'mnt');
    const version = (n: number, pw: string) => {
      mkdirSync(path.join(mnt, `..v${n}`), { recursive: true });
      writeFileSync(path.join(mnt, `..v${n}`, 'password'), pw);
      symlinkSync(`..v${n}`, path.join(mnt, '..data_tmp'));
      renameSync(path.join(mnt, '..data_tmp'), path.join(mnt, '..data'));
    };
    version(0, 'first');
    symlinkSync('..data/password', path.join(mnt, 'password'));
    const q = fileProvider.create({ file: { baseDir: d } });
    const ref = parseRef('file:mnt/password');
    const first = await q.fetch(ref, ctx);
    const seen: string[] = [];
    const stop = q.watch!([ref], (r) => seen.push(r.raw), ctx);
    try {
      const deadline = Date.now() + 10_000;
      for (let n = 1; seen.length === 0 && Date.now() < deadline; n++) {
        version(n, `pw-${n}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(seen).toContain('file:mnt/password');
      const now = await q.fetch(ref, ctx);
      expect(now.version).not.toBe(first.version);
      expect(now.value.kind === 'bytes' && now.value.bytes.toString()).toMatch(/^pw-\d+$/);
    } finally {
      await stop();
    }
  });

  it('watch reports a file whose directory does not exist yet, and after the directory is re-created', async () => {
    const d = tmp();
    const q = fileProvider.create({ file: { baseDir: d } });
    const seen: number[] = [];
    const stop = q.watch!([parseRef('file:later/dir/s.yaml')], () => seen.push(Date.now()), ctx);
    const waitFor = async (n: number) => {
      const deadline = Date.now() + 10_000;
      while (seen.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(seen.length).toBeGreaterThanOrEqual(n);
    };
    try {
      mkdirSync(path.join(d, 'later', 'dir'), { recursive: true });
      writeFileSync(path.join(d, 'later', 'dir', 's.yaml'), 'a: 1\n');
      await waitFor(1);
      // once the directory exists, a change is reported by the watch itself
      await new Promise((r) => setTimeout(r, 300));
      const before = seen.length;
      writeFileSync(path.join(d, 'later', 'dir', 's.yaml'), 'a: 2\n');
      await waitFor(before + 1);
      rmSync(path.join(d, 'later'), { recursive: true });
      await waitFor(before + 2);
      await new Promise((r) => setTimeout(r, 300));
      const gone = seen.length;
      mkdirSync(path.join(d, 'later', 'dir'), { recursive: true });
      writeFileSync(path.join(d, 'later', 'dir', 's.yaml'), 'a: 3\n');
      await waitFor(gone + 1);
    } finally {
      await stop();
    }
  });

  it('watch reports a file that appears later and changes in a watched directory', async () => {
    const d = tmp();
    mkdirSync(path.join(d, 'set'));
    const q = fileProvider.create({ file: { baseDir: d } });
    const seen: string[] = [];
    const stop = q.watch!([parseRef('file:later.env'), parseRef('file:set')], (r) => seen.push(r.raw), ctx);
    const until = async (raw: string, act: () => void) => {
      const deadline = Date.now() + 10_000;
      while (!seen.includes(raw) && Date.now() < deadline) {
        act();
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(seen).toContain(raw);
    };
    try {
      await until('file:later.env', () => writeFileSync(path.join(d, 'later.env'), `X=${Date.now()}\n`));
      await until('file:set', () => writeFileSync(path.join(d, 'set', 'k'), String(Date.now())));
      // a file next to the watched one is not reported as a change of it
      const before = seen.filter((r) => r === 'file:later.env').length;
      writeFileSync(path.join(d, 'unrelated.txt'), 'x');
      await new Promise((r) => setTimeout(r, 400));
      expect(seen.filter((r) => r === 'file:later.env').length).toBe(before);
    } finally {
      await stop();
    }
  });
});
