import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { onceTimeoutError } from '../../sidecar/agent.js';
import { Engine, type EngineOptions } from '../../src/engine.js';
import { SkError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { defaultRegistry } from '../../src/providers/index.js';
import type { FetchResult, Provider, ProviderContext, ProviderFactory } from '../../src/providers/types.js';
import type { SecretRef } from '../../src/refs.js';
import { resolveSpec, type SpecInput } from '../../src/spec.js';
import { STATUS_FILE, type StatusDocument } from '../../src/writer.js';

/**
 * Deadlines of backend calls, with real timers and short deadlines: a call that never answers (and
 * ignores its abort signal, the worst case) is ended by the engine at `fetchTimeout`, shown in the
 * status file while it hangs, and holds up no other backend and no other secret.
 */

/** A backend whose sources can be made to hang; records the signals it was given. */
class HangingBackend {
  readonly values = new Map<string, string>();
  /** Locators whose fetch never settles (ignoring the abort signal). */
  readonly hang = new Set<string>();
  /** Locators whose fetch settles only when its signal aborts (a well-behaved provider). */
  readonly hangUntilAborted = new Set<string>();
  readonly fetches: Array<{ locator: string; at: number }> = [];
  readonly signals: AbortSignal[] = [];
  readonly deadlines: Array<number | undefined> = [];

  constructor(readonly name: string) {}

  factory(): ProviderFactory {
    return { name: this.name, validateRef() {}, create: () => this.provider() };
  }

  provider(): Provider {
    return {
      name: this.name,
      fetch: async (ref: SecretRef, ctx: ProviderContext): Promise<FetchResult> => {
        this.fetches.push({ locator: ref.locator, at: Date.now() });
        this.signals.push(ctx.signal);
        this.deadlines.push(ctx.deadline);
        if (this.hang.has(ref.locator)) await new Promise(() => {});
        if (this.hangUntilAborted.has(ref.locator)) {
          await new Promise((_, reject) =>
            ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }),
          );
        }
        const v = this.values.get(ref.locator);
        if (v === undefined) throw new SkError('SK_ERR_SOURCE_NOT_FOUND', `${ref.raw}: not found`);
        return { value: { kind: 'bytes', bytes: Buffer.from(v) }, version: `v-${v}` };
      },
    };
  }

  fetchCount(locator: string): number {
    return this.fetches.filter((f) => f.locator === locator).length;
  }
}

let tmp: string;
let out: string;
let slow: HangingBackend;
let quick: HangingBackend;
let engines: Engine[];
let logs: string;

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'sk-deadline-'));
  out = path.join(tmp, 'out');
  slow = new HangingBackend('slow');
  quick = new HangingBackend('quick');
  engines = [];
  logs = '';
});
afterEach(async () => {
  for (const e of engines) await e.stop();
  await fs.rm(tmp, { recursive: true, force: true });
});

function makeEngine(spec: Partial<SpecInput>, extra: Partial<EngineOptions> = {}) {
  const resolved = resolveSpec(
    {
      apiVersion: 'sidekey.io/v1',
      kind: 'SecretSpec',
      output: { dir: out },
      jitter: 0,
      secrets: {},
      ...spec,
    },
    { baseDir: tmp },
  );
  const stream = new PassThrough();
  stream.on('data', (c: Buffer) => {
    logs += c.toString();
  });
  const fatal: SkError[] = [];
  const errors: Array<[string, string, number]> = [];
  const engine = new Engine(resolved, {
    registry: defaultRegistry()
      .register(slow.factory(), { override: true })
      .register(quick.factory(), { override: true }),
    log: createLogger({ destination: stream, level: 'debug' }),
    onFatal: (e) => void fatal.push(e),
    onSecretError: (name, e) => void errors.push([name, e.code, Date.now()]),
    ...extra,
  });
  engines.push(engine);
  return { engine, fatal, errors };
}

const read = (name: string) => fs.readFile(path.join(out, name), 'utf8');
const status = async () => JSON.parse(await read(STATUS_FILE)) as StatusDocument;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(fn: () => Promise<T | undefined> | T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve()
      .then(fn)
      .catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`not reached within ${ms} ms`);
    await sleep(20);
  }
}

describe('backend call deadlines', () => {
  it('a fetch that never answers fails with SK_ERR_BACKEND_TIMEOUT at fetchTimeout, naming the call; the file is kept', async () => {
    slow.values.set('db', 'v1');
    const { engine, errors } = makeEngine({
      refresh: '300ms',
      fetchTimeout: '400ms',
      backoff: { initial: '5s' },
      secrets: { db: { ref: 'slow:db' } },
    });
    await engine.start();
    slow.hang.add('db');
    const t0 = Date.now();
    await until(() => errors.length > 0);
    // due after ~300 ms, ended at +400 ms: well before 1 s, and not "never"
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(errors[0]?.slice(0, 2)).toEqual(['db', 'SK_ERR_BACKEND_TIMEOUT']);
    // (the status file is written right after the callback)
    const st = await until(async () => {
      const s = await status();
      return s.secrets.db?.lastError ? s : undefined;
    });
    expect(st.secrets.db?.lastError?.code).toBe('SK_ERR_BACKEND_TIMEOUT');
    expect(st.secrets.db?.lastError?.message).toBe(
      'slow fetch of slow:db: no answer within 400ms (fetchTimeout); the call was ended',
    );
    expect(await read('db')).toBe('v1');
    // The provider was told: its signal is aborted, with the timeout as the reason.
    const signal = slow.signals.at(-1)!;
    expect(signal.aborted).toBe(true);
    expect((signal.reason as SkError).code).toBe('SK_ERR_BACKEND_TIMEOUT');
    expect(slow.deadlines.at(-1)).toBeGreaterThan(t0);
    expect(engine.calls()).toEqual([]);
  });

  it('a call still running is in the status file (what, since when) before its deadline', async () => {
    slow.values.set('db', 'v1');
    const { engine } = makeEngine({
      refresh: '200ms',
      fetchTimeout: '10s',
      secrets: { db: { ref: 'slow:db' } },
    });
    await engine.start();
    slow.hang.add('db');
    const before = Date.now();
    // due at +200 ms, shown once it has run for SLOW_CALL_MS (1 s): long before the 10 s deadline
    const st = await until(async () => {
      const s = await status();
      return s.secrets.db?.inFlight ? s : undefined;
    }, 4000);
    expect(st.secrets.db?.inFlight?.call).toBe('slow fetch of slow:db');
    const since = Date.parse(st.secrets.db!.inFlight!.since);
    expect(since).toBeGreaterThanOrEqual(before - 5);
    expect(Date.now() - since).toBeLessThan(3000);
    expect(engine.calls().map((c) => [c.what, c.limit])).toEqual([['slow fetch of slow:db', 'fetchTimeout']]);
  });

  it('a hung backend does not hold up another backend, nor another secret of its own', async () => {
    slow.values.set('stuck', 's1');
    slow.values.set('fine', 'f1');
    quick.values.set('api', 'a1');
    const { engine } = makeEngine({
      refresh: '150ms',
      fetchTimeout: '20s',
      secrets: {
        stuck: { ref: 'slow:stuck' },
        // a different schedule: due while "stuck" hangs
        fine: { ref: 'slow:fine', refresh: '250ms' },
        api: { ref: 'quick:api' },
      },
    });
    await engine.start();
    slow.hang.add('stuck');
    quick.values.set('api', 'a2');
    slow.values.set('fine', 'f2');
    // Both update while "stuck" hangs (its deadline is 20 s away).
    await until(async () => (await read('api')) === 'a2' && (await read('fine')) === 'f2', 3000);
    expect(quick.fetchCount('api')).toBeGreaterThanOrEqual(2);
    // "stuck" was asked once after the first sync, and is not asked again while its call runs.
    await sleep(400);
    expect(slow.fetchCount('stuck')).toBe(2);
    expect(await read('stuck')).toBe('s1');
  });

  it('maxStale fires on time while every fetch hangs', async () => {
    slow.values.set('db', 'v1');
    const { engine, fatal } = makeEngine({
      refresh: '100ms',
      fetchTimeout: '300ms',
      backoff: { initial: '100ms', max: '100ms' },
      maxStale: { after: '500ms', action: 'fail' },
      secrets: { db: { ref: 'slow:db' } },
    });
    await engine.start();
    slow.hang.add('db');
    const t0 = Date.now();
    await until(() => fatal.length > 0, 4000);
    // first failure at ~100 + 300 ms, stale 500 ms later: ~0.9 s, not "never"
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(fatal[0]?.code).toBe('SK_ERR_STALE');
    expect(fatal[0]?.message).toContain('last error SK_ERR_BACKEND_TIMEOUT');
  });

  it('an overall deadline (agent --once) ends the first sync, naming the call and the setting', async () => {
    slow.values.set('db', 'v1');
    quick.values.set('api', 'a1');
    slow.hangUntilAborted.add('db');
    const { engine } = makeEngine(
      { fetchTimeout: '30s', secrets: { api: { ref: 'quick:api' }, db: { ref: 'slow:db' } } },
      { deadline: Date.now() + 300 },
    );
    const t0 = Date.now();
    const err = (await engine.syncOnce().catch((e: unknown) => e)) as SkError;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(err).toBeInstanceOf(SkError);
    expect(err.code).toBe('SK_ERR_BACKEND_TIMEOUT');
    expect(err.message).toMatch(/^slow fetch of slow:db: no answer within \d+ms \(agent\.onceTimeout\)/);
  });

  it("agent --once's net names the oldest call still running, or says none was", async () => {
    slow.values.set('db', 'v1');
    slow.hang.add('db');
    const { engine } = makeEngine({ fetchTimeout: '60s', secrets: { db: { ref: 'slow:db' } } });
    expect(onceTimeoutError(engine, 30_000).message).toBe(
      'agent --once did not finish within 30s (agent.onceTimeout): no backend call was running (writing the files)',
    );
    void engine.syncOnce().catch(() => {});
    await until(() => engine.calls().length > 0);
    const e = onceTimeoutError(engine, 30_000);
    expect(e.code).toBe('SK_ERR_BACKEND_TIMEOUT');
    expect(e.message).toMatch(
      /^agent --once did not finish within 30s \(agent\.onceTimeout\): still waiting for slow fetch of slow:db \(no answer for \d+ms\)$/,
    );
  });

  it('stop() ends a hung call at once', async () => {
    slow.values.set('db', 'v1');
    const { engine } = makeEngine({
      refresh: '100ms',
      fetchTimeout: '60s',
      secrets: { db: { ref: 'slow:db' } },
    });
    await engine.start();
    slow.hang.add('db');
    await until(() => engine.calls().length > 0);
    const t0 = Date.now();
    await engine.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(engine.calls()).toEqual([]);
    expect(logs).not.toContain('refresh failed');
  });
});
