import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Engine, type EngineOptions, type Timers, type WriteReport } from '../../src/engine.js';
import { SkError } from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { createNotifier, type Notifier } from '../../src/notify.js';
import { defaultRegistry } from '../../src/providers/index.js';
import type {
  ChangeListener,
  FetchResult,
  Lease,
  Provider,
  ProviderFactory,
} from '../../src/providers/types.js';
import { parseRef, type SecretRef } from '../../src/refs.js';
import { resolveSpec, type SpecInput } from '../../src/spec.js';
import { STATUS_FILE, type StatusDocument } from '../../src/writer.js';

const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';

/** A manual clock: timers fire only when the test advances time, and the engine settles after each. */
class ManualClock implements Timers {
  now = 1_700_000_000_000;
  #seq = 0;
  readonly pending = new Map<number, { at: number; fn: () => void }>();
  engine: Engine | undefined;

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.pending.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(h: unknown): void {
    this.pending.delete(h as number);
  }

  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.pending) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.pending.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
      await this.engine?.idle();
    }
    this.now = end;
  }
}

/** An in-memory backend: values by locator, with switches for failures and leases. */
class FakeBackend {
  readonly values = new Map<string, Record<string, string> | string>();
  readonly failing = new Set<string>();
  /** Locators whose fetch throws a plain (non-SkError) error quoting the value, as a buggy provider might. */
  readonly broken = new Set<string>();
  /** Fetch times (clock ms) per locator. */
  readonly fetches: Array<{ locator: string; at: number }> = [];
  fetchManyCalls = 0;
  renewCalls: number[] = [];
  closed = false;
  /** Lease given with each fetch, or none. */
  lease: { ttlMs: number; renewable: boolean } | undefined;
  /** What renew does: grant this ttl, or throw. */
  renewTtlMs: number | 'fail' = 0;
  withFetchMany = false;
  listener: ChangeListener | undefined;
  #leaseSeq = 0;

  constructor(readonly clock: ManualClock) {}

  factory(): ProviderFactory {
    return { name: 'fake', validateRef() {}, create: () => this.provider() };
  }

  provider(): Provider {
    const fetchOne = async (ref: SecretRef): Promise<FetchResult> => {
      this.fetches.push({ locator: ref.locator, at: this.clock.now });
      if (this.broken.has(ref.locator)) JSON.parse(String(this.values.get(ref.locator)));
      if (this.failing.has(ref.locator)) {
        throw new SkError('SK_ERR_BACKEND_UNAVAILABLE', `${ref.raw}: fake backend is down`);
      }
      const v = this.values.get(ref.locator);
      if (v === undefined) throw new SkError('SK_ERR_SOURCE_NOT_FOUND', `${ref.raw}: not found`);
      const value =
        typeof v === 'string'
          ? { kind: 'bytes' as const, bytes: Buffer.from(v) }
          : { kind: 'map' as const, data: v };
      const version = `v-${JSON.stringify(v).length}-${typeof v === 'string' ? v.slice(-3) : Object.keys(v).length}`;
      const lease = this.lease && {
        id: `lease-${++this.#leaseSeq}`,
        ttlMs: this.lease.ttlMs,
        renewable: this.lease.renewable,
        issuedAt: this.clock.now,
      };
      return lease ? { value, version, lease } : { value, version };
    };
    const p: Provider = {
      name: 'fake',
      fetch: fetchOne,
      renew: async (lease: Lease) => {
        this.renewCalls.push(this.clock.now);
        if (this.renewTtlMs === 'fail') throw new SkError('SK_ERR_BACKEND_DENIED', 'fake: lease revoked');
        return { ...lease, ttlMs: this.renewTtlMs, issuedAt: this.clock.now };
      },
      watch: (_refs, onChange) => {
        this.listener = onChange;
        return () => {
          this.listener = undefined;
        };
      },
      close: async () => {
        this.closed = true;
      },
    };
    if (this.withFetchMany) {
      p.fetchMany = async (refs) => {
        this.fetchManyCalls++;
        return Promise.all(refs.map((r) => fetchOne(r).catch((e: SkError) => e)));
      };
    }
    return p;
  }

  fetchTimes(locator: string): number[] {
    return this.fetches.filter((f) => f.locator === locator).map((f) => f.at);
  }
}

let tmp: string;
let out: string;
let clock: ManualClock;
let backend: FakeBackend;
let logs: string;
let engines: Engine[];

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'sk-engine-'));
  out = path.join(tmp, 'out');
  clock = new ManualClock();
  backend = new FakeBackend(clock);
  logs = '';
  engines = [];
});
afterEach(async () => {
  for (const e of engines) await e.stop();
  expect(logs).not.toContain(CANARY);
  await fs.rm(tmp, { recursive: true, force: true });
});

interface Recorded {
  engine: Engine;
  notified: string[][];
  reports: WriteReport[];
  secretErrors: Array<[string, string]>;
  fatal: SkError[];
}

function makeEngine(spec: Partial<SpecInput>, extra: Partial<EngineOptions> = {}): Recorded {
  const resolved = resolveSpec(
    { apiVersion: 'sidekey.io/v1', kind: 'SecretSpec', output: { dir: out }, secrets: {}, ...spec },
    { baseDir: tmp },
  );
  const stream = new PassThrough();
  stream.on('data', (c: Buffer) => {
    logs += c.toString();
  });
  const rec: Omit<Recorded, 'engine'> = { notified: [], reports: [], secretErrors: [], fatal: [] };
  const notifier: Notifier = {
    changed: (files) => void rec.notified.push([...files]),
    flush: async () => {},
    close: async () => {},
  };
  const engine = new Engine(resolved, {
    registry: defaultRegistry().register(backend.factory(), { override: true }),
    log: createLogger({ destination: stream, level: 'debug' }),
    notifier,
    onWrite: (r) => void rec.reports.push(r),
    onSecretError: (name, e) => void rec.secretErrors.push([name, e.code]),
    onFatal: (e) => void rec.fatal.push(e),
    now: () => clock.now,
    random: () => 0.5,
    timers: clock,
    ...extra,
  });
  clock.engine = engine;
  engines.push(engine);
  return { engine, ...rec };
}

const read = (name: string) => fs.readFile(path.join(out, name), 'utf8');
const status = async () => JSON.parse(await read(STATUS_FILE)) as StatusDocument;

describe('Engine.syncOnce', () => {
  it('fetches, selects keys, renders and writes the whole set; the status file has no values', async () => {
    backend.values.set('db', { user: 'app', password: CANARY });
    backend.values.set('api', 'token-123');
    const { engine, notified } = makeEngine({
      secrets: {
        'db-user': { ref: 'fake:db#user' },
        'db-password': { ref: 'fake:db#password', mode: '0400' },
        api: { ref: 'fake:api', file: 'conf/api.key' },
        'db-json': { ref: 'fake:db', format: 'json' },
      },
    });
    const report = await engine.syncOnce();
    expect(report.first).toBe(true);
    expect(report.changedFiles.sort()).toEqual(['conf/api.key', 'db-json', 'db-password', 'db-user']);
    // booleans: a failing assertion must not print the canary
    expect((await read('db-password')) === CANARY).toBe(true);
    expect(await read('db-user')).toBe('app');
    expect(await read('conf/api.key')).toBe('token-123');
    expect(JSON.parse(await read('db-json')).password === CANARY).toBe(true);
    expect((await fs.stat(path.join(out, 'db-password'))).mode & 0o777).toBe(0o400);
    // one fetch per source, not per secret
    expect(backend.fetches.map((f) => f.locator).sort()).toEqual(['api', 'db']);
    const st = await status();
    expect(st.ready).toBe(true);
    expect(Object.keys(st.secrets).sort()).toEqual(['api', 'db-json', 'db-password', 'db-user']);
    expect(st.secrets['db-password']).toMatchObject({
      file: 'db-password',
      fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(JSON.stringify(st)).not.toContain(CANARY);
    // nothing new: no files changed, and no notification for the first write
    const again = await engine.syncOnce();
    expect(again).toMatchObject({ first: false, changedFiles: [], changedSecrets: [] });
    expect(notified).toEqual([]);
  });

  it('batches through fetchMany when the provider has it', async () => {
    backend.withFetchMany = true;
    backend.values.set('a', '1');
    backend.values.set('b', '2');
    const { engine } = makeEngine({ secrets: { a: { ref: 'fake:a' }, b: { ref: 'fake:b' } } });
    await engine.syncOnce();
    expect(backend.fetchManyCalls).toBe(1);
    expect(backend.fetches).toHaveLength(2);
  });

  it('is all or nothing: one failing secret rejects with its SkError and writes nothing', async () => {
    backend.values.set('a', '1');
    backend.values.set('c', { x: '1' });
    const { engine } = makeEngine({
      secrets: { a: { ref: 'fake:a' }, b: { ref: 'fake:missing' }, c: { ref: 'fake:c#nokey' } },
    });
    const err = await engine.syncOnce().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SkError);
    expect((err as SkError).code).toBe('SK_ERR_SOURCE_NOT_FOUND');
    await expect(fs.readdir(out)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('names an unknown provider with SK_ERR_PROVIDER_UNKNOWN', async () => {
    const { engine } = makeEngine({ secrets: { a: { ref: 'nope:a' } } });
    await expect(engine.syncOnce()).rejects.toMatchObject({ code: 'SK_ERR_PROVIDER_UNKNOWN' });
  });

  it('a provider throwing a plain error (against its contract) is reported by type, never by message', async () => {
    backend.values.set('tok', CANARY);
    backend.broken.add('tok');
    const { engine } = makeEngine({ secrets: { tok: { ref: 'fake:tok' } } });
    const err = await engine.syncOnce().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'SK_ERR_INTERNAL' });
    expect(String(err)).toContain('fake:tok: fake provider: failed unexpectedly (SyntaxError)');
    // V8 quotes the first characters of the input: no part of the value may get through
    expect(String(err)).not.toContain('SKCANARY');
    expect(JSON.stringify(err)).not.toContain('SKCANARY');
    expect((err as Error).cause).toBeUndefined();
  });

  it('a plain error during rotation reaches the status file and logs by type only', async () => {
    backend.values.set('tok', 'first');
    const { engine } = makeEngine({ refresh: '10s', secrets: { tok: { ref: 'fake:tok' } } });
    await engine.start();
    backend.values.set('tok', CANARY);
    backend.broken.add('tok');
    await clock.advance(11_000);
    const st = await status();
    expect(st.secrets.tok?.lastError?.message).toContain('failed unexpectedly (SyntaxError)');
    expect(JSON.stringify(st)).not.toContain('SKCANARY');
    expect(logs).toContain('failed unexpectedly (SyntaxError)');
    expect(logs).not.toContain('SKCANARY');
  });
});

describe('Engine rotation', () => {
  it('refreshes on the interval, writes only on change and notifies with the changed files', async () => {
    backend.values.set('a', 'one');
    backend.values.set('b', 'bee');
    const { engine, notified, reports } = makeEngine({
      refresh: '10s',
      secrets: { a: { ref: 'fake:a' }, b: { ref: 'fake:b', refresh: '1m' } },
    });
    await engine.start();
    expect(reports.map((r) => r.first)).toEqual([true]);
    await clock.advance(10_000);
    expect(backend.fetchTimes('a')).toHaveLength(2);
    expect(reports).toHaveLength(1); // same value: nothing written, nothing told
    backend.values.set('a', 'two');
    await clock.advance(10_000);
    expect(await read('a')).toBe('two');
    expect(notified).toEqual([['a']]);
    expect(reports[1]).toMatchObject({ first: false, changedFiles: ['a'], changedSecrets: ['a'] });
    // b keeps its own interval
    expect(backend.fetchTimes('b')).toHaveLength(1);
    await clock.advance(40_000);
    expect(backend.fetchTimes('b')).toHaveLength(2);
    expect(backend.fetchTimes('a')).toHaveLength(7);
  });

  it('keeps the refresh within the jitter bounds', async () => {
    for (const [r, expected] of [
      [0, 9_000],
      [0.999999, 11_000],
    ] as const) {
      backend.fetches.length = 0;
      const { engine } = makeEngine(
        { refresh: '10s', jitter: 0.1, secrets: { a: { ref: 'fake:a' } } },
        {
          random: () => r,
        },
      );
      backend.values.set('a', 'x');
      await engine.start();
      const start = clock.now;
      await clock.advance(expected - 1);
      expect(backend.fetchTimes('a')).toHaveLength(1);
      await clock.advance(1);
      expect(backend.fetchTimes('a')).toEqual([start, start + expected]);
      await engine.stop();
    }
  });

  it('backs off exponentially up to the cap, keeps the last good file, and recovers', async () => {
    backend.values.set('bad', 'good-value');
    backend.values.set('ok', 'fine');
    const { engine, secretErrors, notified } = makeEngine(
      {
        refresh: '10s',
        jitter: 0.1,
        backoff: { initial: '1s', max: '8s' },
        secrets: { bad: { ref: 'fake:bad' }, ok: { ref: 'fake:ok' } },
      },
      { random: () => 0 },
    );
    await engine.start();
    const t0 = clock.now;
    backend.failing.add('bad');
    await clock.advance(9_000 + 1_000 + 2_000 + 4_000 + 8_000 + 8_000 + 8_000);
    const times = backend.fetchTimes('bad').map((t) => t - t0);
    expect(times).toEqual([0, 9_000, 10_000, 12_000, 16_000, 24_000, 32_000, 40_000]);
    const gaps = times.slice(2).map((t, i) => t - times[i + 1]!);
    expect(gaps).toEqual([1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    expect(await read('bad')).toBe('good-value');
    expect(secretErrors).toHaveLength(7);
    expect(secretErrors.every(([n, c]) => n === 'bad' && c === 'SK_ERR_BACKEND_UNAVAILABLE')).toBe(true);
    const st = await status();
    expect(st.secrets.bad!.lastError).toMatchObject({ code: 'SK_ERR_BACKEND_UNAVAILABLE' });
    expect(st.secrets.ok!.lastError).toBeUndefined();
    // the healthy secret kept its own schedule
    expect(backend.fetchTimes('ok').length).toBeGreaterThanOrEqual(5);
    // recovery resets the backoff and the status
    backend.failing.delete('bad');
    backend.values.set('bad', 'new-value');
    await clock.advance(8_000);
    expect(await read('bad')).toBe('new-value');
    expect(notified).toEqual([['bad']]);
    expect((await status()).secrets.bad!.lastError).toBeUndefined();
    const n = backend.fetchTimes('bad').length;
    await clock.advance(8_999);
    expect(backend.fetchTimes('bad')).toHaveLength(n);
    await clock.advance(1);
    expect(backend.fetchTimes('bad')).toHaveLength(n + 1);
  });

  it('a failed write keeps the old files live and is retried with backoff', async () => {
    backend.values.set('a', 'v1');
    backend.values.set('b', 'b1');
    const { engine, secretErrors, notified } = makeEngine({
      refresh: '10s',
      jitter: 0,
      backoff: { initial: '1s', max: '1s' },
      secrets: { a: { ref: 'fake:a' }, b: { ref: 'fake:b', refresh: '1h' } },
    });
    await engine.start();
    // a user's file where the writer keeps its symlink `b` makes the write fail (it never clobbers it)
    await fs.unlink(path.join(out, 'b'));
    await fs.writeFile(path.join(out, 'b'), 'the user’s own file');
    backend.values.set('a', 'v2');
    await clock.advance(10_000);
    expect(await read('a')).toBe('v1');
    expect(secretErrors).toEqual([['a', 'SK_ERR_WRITE']]);
    expect((await status()).secrets.a!.lastError?.code).toBe('SK_ERR_WRITE');
    await fs.rm(path.join(out, 'b'));
    await clock.advance(1_000);
    expect(await read('a')).toBe('v2');
    expect(notified).toEqual([['a']]);
  });

  it('never retries faster than 100 ms, even with backoff.initial 0', async () => {
    backend.values.set('a', 'x');
    const { engine } = makeEngine({
      refresh: '10s',
      jitter: 0,
      backoff: { initial: '0', max: '0' },
      secrets: { a: { ref: 'fake:a' } },
    });
    await engine.start();
    backend.failing.add('a');
    await clock.advance(10_000 + 1_000);
    expect(backend.fetchTimes('a')).toHaveLength(1 + 1 + 10);
  });

  it('max-stale keep: marks the secret stale and keeps serving it', async () => {
    backend.values.set('a', 'v1');
    const { engine, fatal } = makeEngine({
      refresh: '10s',
      jitter: 0,
      backoff: { initial: '5s', max: '5s' },
      maxStale: { after: '30s', action: 'keep' },
      secrets: { a: { ref: 'fake:a' } },
    });
    await engine.start();
    backend.failing.add('a');
    await clock.advance(10_000 + 29_999);
    expect((await status()).secrets.a!.stale).toBeUndefined();
    await clock.advance(1);
    expect((await status()).secrets.a!.stale).toBe(true);
    expect(logs).toContain('SK_ERR_STALE');
    expect(fatal).toEqual([]);
    expect(await read('a')).toBe('v1');
  });

  it('max-stale fail: calls onFatal once with SK_ERR_STALE', async () => {
    backend.values.set('a', 'v1');
    const { engine, fatal } = makeEngine({
      refresh: '10s',
      jitter: 0,
      backoff: { initial: '5s', max: '5s' },
      maxStale: { after: '30s', action: 'fail' },
      secrets: { a: { ref: 'fake:a' } },
    });
    await engine.start();
    backend.failing.add('a');
    await clock.advance(10_000 + 29_999);
    expect(fatal).toEqual([]);
    await clock.advance(60_000);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]!.code).toBe('SK_ERR_STALE');
    expect(fatal[0]!.message).toContain('fake:a');
  });

  it('a recovery before max-stale clears the stale clock', async () => {
    backend.values.set('a', 'v1');
    const { engine, fatal } = makeEngine({
      refresh: '10s',
      jitter: 0,
      backoff: { initial: '5s', max: '5s' },
      maxStale: { after: '30s', action: 'fail' },
      secrets: { a: { ref: 'fake:a' } },
    });
    await engine.start();
    backend.failing.add('a');
    await clock.advance(10_000 + 20_000);
    backend.failing.delete('a');
    await clock.advance(5_000);
    backend.failing.add('a');
    await clock.advance(25_000);
    expect(fatal).toEqual([]);
  });

  it('renews a lease at 2/3 of its TTL, then fetches anew when renewal fails, and notifies', async () => {
    backend.values.set('creds', 'user-1');
    backend.lease = { ttlMs: 30_000, renewable: true };
    backend.renewTtlMs = 30_000;
    const { engine, notified } = makeEngine({
      refresh: '5s', // leases drive the schedule, not the refresh interval
      secrets: { db: { ref: 'fake:creds' } },
    });
    await engine.start();
    const t0 = clock.now;
    await clock.advance(45_000);
    expect(backend.renewCalls.map((t) => t - t0)).toEqual([20_000, 40_000]);
    expect(backend.fetches).toHaveLength(1);
    const st = await status();
    expect(st.secrets.db!.lease).toEqual({
      ttlSeconds: 30,
      expiresAt: new Date(t0 + 40_000 + 30_000).toISOString(),
      renewable: true,
    });
    backend.renewTtlMs = 'fail';
    backend.values.set('creds', 'user-2');
    await clock.advance(15_000);
    expect(backend.renewCalls.map((t) => t - t0)).toEqual([20_000, 40_000, 60_000]);
    expect(backend.fetchTimes('creds').map((t) => t - t0)).toEqual([0, 60_000]);
    expect(await read('db')).toBe('user-2');
    expect(notified).toEqual([['db']]);
    // the new lease is renewed again at 2/3 of its TTL
    backend.renewTtlMs = 30_000;
    await clock.advance(20_000);
    expect(backend.renewCalls.map((t) => t - t0)).toEqual([20_000, 40_000, 60_000, 80_000]);
  });

  it('keeps secrets of one leased source in lock-step: one renewal, one re-fetch, one write', async () => {
    backend.values.set('creds', { user: 'u1', pass: 'p1' });
    backend.lease = { ttlMs: 30_000, renewable: true };
    backend.renewTtlMs = 30_000;
    let calls = 0;
    const { engine, notified } = makeEngine(
      {
        jitter: 0.4, // a quarter of it on renewals: 2/3 TTL ± 10 %
        secrets: { 'db-user': { ref: 'fake:creds#user' }, 'db-pass': { ref: 'fake:creds#pass' } },
      },
      { random: () => (calls++ % 2 === 0 ? 0 : 0.999999) },
    );
    await engine.start();
    const t0 = clock.now;
    await clock.advance(55_000);
    // db-user was due at 18 s, db-pass at 22 s: the first due renews the shared lease for both
    expect(backend.renewCalls.map((t) => t - t0)).toEqual([18_000, 36_000, 54_000]);
    backend.renewTtlMs = 'fail';
    backend.values.set('creds', { user: 'u2', pass: 'p2' });
    await clock.advance(20_000);
    expect(backend.fetches).toHaveLength(2);
    expect([await read('db-user'), await read('db-pass')]).toEqual(['u2', 'p2']);
    expect(notified).toEqual([['db-pass', 'db-user']]);
  });

  it('updates the secrets of one static source independently: a broken key fails only its secret', async () => {
    backend.values.set('creds', { user: 'u1', pass: 'p1' });
    const { engine, secretErrors } = makeEngine({
      refresh: '10s',
      jitter: 0,
      secrets: { 'db-user': { ref: 'fake:creds#user' }, 'db-pass': { ref: 'fake:creds#pass' } },
    });
    await engine.start();
    backend.values.set('creds', { user: 'u2' }); // the new value lacks #pass
    await clock.advance(10_000);
    expect(backend.fetches).toHaveLength(2);
    expect([await read('db-user'), await read('db-pass')]).toEqual(['u2', 'p1']);
    expect(secretErrors).toEqual([['db-pass', 'SK_ERR_KEY_NOT_FOUND']]);
  });

  it('updates the secrets of one dynamic (leased) source together or not at all', async () => {
    backend.values.set('creds', { user: 'u1', pass: 'p1' });
    backend.lease = { ttlMs: 11_765, renewable: false }; // re-fetched at 85 %: 10 s
    const { engine, secretErrors } = makeEngine({
      jitter: 0,
      secrets: { 'db-user': { ref: 'fake:creds#user' }, 'db-pass': { ref: 'fake:creds#pass' } },
    });
    await engine.start();
    backend.values.set('creds', { user: 'u2' }); // the new value lacks #pass
    await clock.advance(10_000);
    expect(backend.fetches).toHaveLength(2);
    expect([await read('db-user'), await read('db-pass')]).toEqual(['u1', 'p1']);
    expect(secretErrors.sort()).toEqual([
      ['db-pass', 'SK_ERR_KEY_NOT_FOUND'],
      ['db-user', 'SK_ERR_KEY_NOT_FOUND'],
    ]);
    const st = await status();
    expect(st.secrets['db-user']!.lastError?.message).toContain('same source');
    backend.values.set('creds', { user: 'u3', pass: 'p3' });
    await clock.advance(1_000);
    expect([await read('db-user'), await read('db-pass')]).toEqual(['u3', 'p3']);
  });

  it('stops renewing when a renewal comes back short (max TTL) and re-fetches near the end', async () => {
    backend.values.set('creds', 'user-1');
    backend.lease = { ttlMs: 30_000, renewable: true };
    backend.renewTtlMs = 12_000;
    const { engine } = makeEngine({ secrets: { db: { ref: 'fake:creds' } } });
    await engine.start();
    const t0 = clock.now;
    await clock.advance(20_000);
    expect(backend.renewCalls).toHaveLength(1);
    // 12 s granted at t=20 s: re-fetch at 85 % of it, t = 30.2 s
    await clock.advance(10_199);
    expect(backend.fetches).toHaveLength(1);
    await clock.advance(1);
    expect(backend.fetchTimes('creds').map((t) => t - t0)).toEqual([0, 30_200]);
    expect(backend.renewCalls).toHaveLength(1);
  });

  it('re-fetches a lease that is not renewable near its end', async () => {
    backend.values.set('creds', 'u');
    backend.lease = { ttlMs: 100_000, renewable: false };
    const { engine } = makeEngine({ secrets: { db: { ref: 'fake:creds' } } });
    await engine.start();
    const t0 = clock.now;
    await clock.advance(200_000);
    expect(backend.renewCalls).toEqual([]);
    expect(backend.fetchTimes('creds').map((t) => t - t0)).toEqual([0, 85_000, 170_000]);
  });

  it('coalesces a burst of watch events into one fetch', async () => {
    backend.values.set('src', { a: '1', b: '2' });
    const { engine, notified } = makeEngine({
      refresh: '0',
      secrets: { a: { ref: 'fake:src#a' }, b: { ref: 'fake:src#b' } },
    });
    await engine.start();
    backend.values.set('src', { a: '10', b: '20' });
    for (let i = 0; i < 5; i++) {
      backend.listener!(parseRef('fake:src#a'));
      backend.listener!(parseRef('fake:src'));
    }
    await clock.advance(100);
    expect(backend.fetches).toHaveLength(2);
    expect([await read('a'), await read('b')]).toEqual(['10', '20']);
    expect(notified).toEqual([['a', 'b']]);
    // refresh 0: nothing else is scheduled
    await clock.advance(3_600_000);
    expect(backend.fetches).toHaveLength(2);
  });

  it('stop clears timers, stops watches and closes providers', async () => {
    backend.values.set('a', '1');
    const { engine } = makeEngine({ refresh: '10s', secrets: { a: { ref: 'fake:a' } } });
    await engine.start();
    expect(backend.listener).toBeDefined();
    await engine.stop();
    expect(clock.pending.size).toBe(0);
    expect(backend.listener).toBeUndefined();
    expect(backend.closed).toBe(true);
    await clock.advance(60_000);
    expect(backend.fetches).toHaveLength(1);
  });

  it('stop during a write leaves no timer behind (not even a max-stale timer for a new failure)', async () => {
    backend.values.set('a', 'v1');
    backend.values.set('b', 'v1');
    let stopping: Promise<void> | undefined;
    let engine: Engine | undefined;
    // The writer logs "files written" right after the swap: stop then, while the rotation is mid-way.
    const hook = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs += chunk.toString();
        if (chunk.toString().includes('files written') && engine?.status().ready) stopping ??= engine.stop();
        cb();
      },
    });
    ({ engine } = makeEngine(
      {
        refresh: '10s',
        jitter: 0,
        maxStale: { after: '5m', action: 'keep' },
        secrets: { a: { ref: 'fake:a' }, b: { ref: 'fake:b' } },
      },
      { log: createLogger({ destination: hook, level: 'debug' }) },
    ));
    await engine.start();
    backend.values.set('a', 'v2');
    backend.failing.add('b');
    await clock.advance(10_000);
    expect(stopping).toBeDefined();
    await stopping;
    expect(await read('a')).toBe('v2');
    expect(clock.pending.size).toBe(0);
  });

  it('stop closes the notifier: a change still in its debounce window is not notified after stop', async () => {
    backend.values.set('a', 'v1');
    const marker = path.join(tmp, 'notified');
    const notifier = createNotifier(
      {
        type: 'exec',
        command: [process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')`],
      },
      { debounceMs: 100, log: silentLogger },
    );
    const { engine } = makeEngine(
      { refresh: '10s', jitter: 0, secrets: { a: { ref: 'fake:a' } } },
      { notifier },
    );
    await engine.start();
    backend.values.set('a', 'v2');
    await clock.advance(10_000);
    expect(await read('a')).toBe('v2');
    await engine.stop();
    await new Promise((r) => setTimeout(r, 400));
    await expect(fs.stat(marker)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('start rejects and cleans up when the first sync fails', async () => {
    const { engine } = makeEngine({ refresh: '10s', secrets: { a: { ref: 'fake:none' } } });
    await expect(engine.start()).rejects.toMatchObject({ code: 'SK_ERR_SOURCE_NOT_FOUND' });
    expect(clock.pending.size).toBe(0);
    expect(backend.closed).toBe(true);
  });
});

describe('Engine observer', () => {
  it('reports provider creation, every timed backend call, refreshes and failures by code; status has changedAt', async () => {
    backend.values.set('a', 'one');
    backend.values.set('creds', 'user-1');
    const events: string[] = [];
    const providers: string[] = [];
    const { engine } = makeEngine(
      { refresh: '10s', jitter: 0, backoff: { initial: '1s' }, secrets: { a: { ref: 'fake:a' } } },
      {
        observer: {
          providerCreated: (name, p) => void providers.push(`${name}:${p.name}`),
          backendCall: (prov, op, seconds, code) => {
            expect(seconds).toBeGreaterThanOrEqual(0);
            events.push(`call ${prov} ${op} ${code ?? 'ok'}`);
          },
          refreshed: (secret, at) => void events.push(`ok ${secret} ${at - clock.now}`),
          refreshFailed: (secret, code) => void events.push(`failed ${secret} ${code}`),
        },
      },
    );
    await engine.start();
    expect(providers).toEqual(['fake:fake']);
    const first = clock.now;
    expect(events).toEqual(['call fake fetch ok', 'ok a 0']);
    expect((await status()).secrets.a!.changedAt).toBe(new Date(first).toISOString());

    // unchanged refresh: fetched again, changedAt stays
    await clock.advance(10_000);
    expect((await status()).secrets.a).toMatchObject({
      changedAt: new Date(first).toISOString(),
      fetchedAt: new Date(first + 10_000).toISOString(),
    });
    // an outage: the failure is reported with its code
    backend.failing.add('a');
    events.length = 0;
    await clock.advance(10_000);
    expect(events).toEqual([
      'call fake fetch SK_ERR_BACKEND_UNAVAILABLE',
      'failed a SK_ERR_BACKEND_UNAVAILABLE',
    ]);
    // recovery with a new value: changedAt moves
    backend.failing.delete('a');
    backend.values.set('a', 'two');
    await clock.advance(1_000);
    expect(events.at(-1)).toBe('ok a 0');
    expect((await status()).secrets.a!.changedAt).toBe(new Date(clock.now).toISOString());
  });

  it('times lease renewals and a throwing hook never disturbs rotation', async () => {
    backend.values.set('creds', 'user-1');
    backend.lease = { ttlMs: 30_000, renewable: true };
    backend.renewTtlMs = 30_000;
    const ops: string[] = [];
    const { engine } = makeEngine(
      { secrets: { db: { ref: 'fake:creds' } } },
      {
        observer: {
          backendCall: (_p, op) => {
            ops.push(op);
            throw new Error('hook bug');
          },
          refreshed: () => {
            throw new Error('hook bug');
          },
        },
      },
    );
    await engine.start();
    await clock.advance(21_000);
    expect(ops).toEqual(['fetch', 'renew']);
    expect(await read('db')).toBe('user-1');
  });
});
