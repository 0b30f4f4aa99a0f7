import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultRegistry } from '../../../src/providers/index.js';
import { createK8sProvider, k8sProvider } from '../../../src/providers/k8s/index.js';
import { selectKey } from '../../../src/providers/select-key.js';
import type { Provider, SecretValue } from '../../../src/providers/types.js';
import { parseRef, type SecretRef } from '../../../src/refs.js';
import {
  CANARY,
  catchSk,
  catchSkAsync,
  describeProviderContract,
  expectNoCanary,
  type ProviderHarness,
  recordingContext,
} from '../../unit/providers/contract.js';
import { K8sApiEmulator } from './k8s-api-emulator.js';

const NS = 'payments';
const TOKEN = 'sa-token-for-tests';
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tokenFile(token = TOKEN): string {
  const d = mkdtempSync(path.join(tmpdir(), 'sidekey-k8s-'));
  dirs.push(d);
  const f = path.join(d, 'token');
  writeFileSync(f, token);
  return f;
}

async function emulator(): Promise<{ api: K8sApiEmulator; server: string }> {
  const api = new K8sApiEmulator();
  api.tokens.set(TOKEN, '*');
  return { api, server: await api.listen() };
}

const fast = { initialBackoffMs: 50, maxBackoffMs: 400, minWatchMs: 100 };

function text(v: SecretValue, ref: SecretRef): string {
  const s = selectKey(v, ref);
  if (s.kind !== 'bytes') throw new Error('expected bytes');
  return s.bytes.toString('utf8');
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describeProviderContract(
  'k8s (API emulator)',
  { nestedMaps: false, fetchMany: false, watch: true, unreadable: false, watchTimeoutMs: 10_000 },
  async (): Promise<ProviderHarness> => {
    const { api, server } = await emulator();
    const provider = createK8sProvider({ server, tokenFile: tokenFile(), namespace: NS }, fast);
    return {
      provider,
      async putString(name, value) {
        api.put(NS, name, { value });
        return `k8s:${name}#value`;
      },
      async putMap(name, data) {
        api.put(NS, name, Object.fromEntries(Object.entries(data).map(([k, v]) => [k, String(v)])));
        return `k8s:${name}`;
      },
      async remove(name) {
        api.remove(NS, name);
      },
      missingRef: () => 'k8s:does-not-exist',
      async close() {
        await api.close();
      },
    };
  },
);

describe('k8s provider (API emulator)', () => {
  let api: K8sApiEmulator;
  let server: string;
  const ctx = recordingContext();
  const providers: Provider[] = [];
  const make = (settings: Parameters<typeof createK8sProvider>[0]) => {
    const p = createK8sProvider(settings, fast);
    providers.push(p);
    return p;
  };

  beforeAll(async () => {
    ({ api, server } = await emulator());
  });
  afterAll(async () => {
    await api.close();
    expect(ctx.lines.join('\n')).not.toContain(CANARY);
  });

  it('is in the default registry and declares it needs the service-account token', () => {
    expect(defaultRegistry().get('k8s')).toBe(k8sProvider);
    expect(k8sProvider.needs?.serviceAccountToken).toBe(true);
  });

  it('validates refs without I/O', () => {
    expect(() => k8sProvider.validateRef(parseRef('k8s:db-credentials#password'), 'x')).not.toThrow();
    expect(catchSk(() => k8sProvider.validateRef(parseRef('k8s:Bad_Name'), 'a')).code).toBe(
      'SK_ERR_REF_SYNTAX',
    );
    expect(catchSk(() => k8sProvider.validateRef(parseRef('k8s:db?namespace=other'), 'a')).message).toMatch(
      /take none/,
    );
  });

  it('reads every key decoded, binary keys as Buffers, version = resourceVersion, with the token file', async () => {
    const bin = Buffer.from([0xff, 0x00, 0xfe]);
    const rv = api.put(NS, 'db', { password: CANARY, 'tls.key': bin });
    const p = make({ server, tokenFile: tokenFile(), namespace: NS });
    const r = await p.fetch(parseRef('k8s:db'), ctx);
    expect(r.version).toBe(rv);
    expect(r.value.kind).toBe('map');
    const data = r.value.kind === 'map' ? r.value.data : {};
    expect(data.password).toBe(CANARY);
    expect(Buffer.isBuffer(data['tls.key']) && (data['tls.key'] as Buffer).equals(bin)).toBe(true);
    expect(text(r.value, parseRef('k8s:db#password'))).toBe(CANARY);
    expect(api.seenTokens.at(-1)).toBe(`Bearer ${TOKEN}`);
  });

  it('maps 401, 403 (naming verb and resource) and 404', async () => {
    api.put(NS, 'other-team', { password: CANARY });
    api.tokens.set('narrow-token', new Set(['db']));
    const narrow = make({ server, tokenFile: tokenFile('narrow-token'), namespace: NS });
    const denied = await catchSkAsync(() => narrow.fetch(parseRef('k8s:other-team#password'), ctx));
    expect(denied.code).toBe('SK_ERR_BACKEND_DENIED');
    expect(denied.message).toContain('get secrets/other-team');
    expect(denied.message).toContain('k8s:other-team#password');
    expectNoCanary(denied);

    const bad = make({ server, tokenFile: tokenFile('wrong-token'), namespace: NS });
    const unauth = await catchSkAsync(() => bad.fetch(parseRef('k8s:db'), ctx));
    expect(unauth.code).toBe('SK_ERR_BACKEND_AUTH');
    expect(unauth.message).not.toContain('wrong-token');

    const p = make({ server, tokenFile: tokenFile(), namespace: 'elsewhere' });
    const missing = await catchSkAsync(() => p.fetch(parseRef('k8s:db'), ctx));
    expect(missing.code).toBe('SK_ERR_SOURCE_NOT_FOUND');
    expect(missing.message).toContain('namespace elsewhere');
  });

  it('re-reads the token file, so a rotated projected token is used at once (trailing newline ignored)', async () => {
    api.put(NS, 'rot', { k: 'v' });
    api.tokens.set('rotated-token', '*');
    const file = tokenFile(`${TOKEN}\n`);
    const p = make({ server, tokenFile: file, namespace: NS });
    await p.fetch(parseRef('k8s:rot'), ctx);
    expect(api.seenTokens.at(-1)).toBe(`Bearer ${TOKEN}`);
    writeFileSync(file, 'rotated-token');
    await p.fetch(parseRef('k8s:rot'), ctx);
    expect(api.seenTokens.at(-1)).toBe('Bearer rotated-token');
    rmSync(file);
    const err = await catchSkAsync(() => p.fetch(parseRef('k8s:rot'), ctx));
    expect(err.code).toBe('SK_ERR_BACKEND_AUTH');
    expect(err.message).toContain('token file');
  });

  it('maps an unreachable API server to SK_ERR_BACKEND_UNAVAILABLE', async () => {
    const dead = new K8sApiEmulator();
    const url = await dead.listen();
    await dead.close();
    const p = make({ server: url, tokenFile: tokenFile(), namespace: NS });
    const err = await catchSkAsync(() => p.fetch(parseRef('k8s:db'), ctx));
    expect(err.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
  });

  it('watch: a change reaches the listener through the watch stream, without polling', async () => {
    api.put(NS, 'watched', { token: 'v1' });
    const p = make({ server, tokenFile: tokenFile(), namespace: NS });
    const ref = parseRef('k8s:watched#token');
    await p.fetch(ref, ctx);
    const seen: string[] = [];
    const watchesBefore = api.counts.watch;
    const stop = p.watch!([ref], (r) => seen.push(r.raw), ctx);
    await until(() => api.openWatches > 0 && api.counts.watch > watchesBefore);
    const getsBefore = api.counts.get;
    api.put(NS, 'watched', { token: `v2-${CANARY}` });
    await until(() => seen.length === 1);
    expect(seen).toEqual(['k8s:watched#token']);
    // Delivered by the stream: no GET happened in between.
    expect(api.counts.get).toBe(getsBefore);
    expect(text((await p.fetch(ref, ctx)).value, ref)).toBe(`v2-${CANARY}`);
    await stop();
    await until(() => api.openWatches === 0, 3000);
  });

  it('watch: falls back to re-listing with backoff while watches fail, and catches changes made meanwhile', async () => {
    api.put(NS, 'flaky', { token: 'a' });
    const p = make({ server, tokenFile: tokenFile(), namespace: NS });
    const ref = parseRef('k8s:flaky#token');
    await p.fetch(ref, ctx);
    const seen: string[] = [];
    api.failWatches = 4;
    const getsBefore = api.counts.get;
    const stop = p.watch!([ref], (r) => seen.push(r.raw), ctx);
    // While the watch keeps failing, the Secret is re-read after each failure.
    await until(() => api.counts.get >= getsBefore + 2);
    api.put(NS, 'flaky', { token: 'b' });
    await until(() => seen.length >= 1);
    // Once watches work again, changes arrive through the stream.
    await until(() => api.failWatches === 0 && api.openWatches > 0);
    const n = seen.length;
    api.put(NS, 'flaky', { token: 'c' });
    await until(() => seen.length > n);
    // A cut stream is re-opened; a change made while it was down is still reported.
    api.cutWatches();
    api.put(NS, 'flaky', { token: 'd' });
    const m = seen.length;
    await until(() => seen.length > m);
    await until(() => api.openWatches > 0);
    await stop();
    expect(new Set(seen)).toEqual(new Set(['k8s:flaky#token']));
  });

  it('watch: without watch rights, warns once and still sees changes by re-reading', async () => {
    api.put(NS, 'no-watch', { token: 'a' });
    api.failWatches = 1_000_000;
    api.failWatchStatus = 403;
    const lines: string[] = [];
    const wctx = recordingContext(lines);
    const p = make({ server, tokenFile: tokenFile(), namespace: NS });
    const ref = parseRef('k8s:no-watch#token');
    await p.fetch(ref, wctx);
    const seen: string[] = [];
    const stop = p.watch!([ref], (r) => seen.push(r.raw), wctx);
    try {
      await until(() => lines.some((l) => l.includes('denied (403)')));
      api.put(NS, 'no-watch', { token: `b-${CANARY}` });
      await until(() => seen.length === 1);
    } finally {
      await stop();
      api.failWatches = 0;
      api.failWatchStatus = 500;
    }
    expect(lines.filter((l) => l.includes('"level":"warn"'))).toHaveLength(1);
    expect(lines.join('\n')).not.toContain(CANARY);
  });

  it('watch: deleting the Secret is reported as a change; fetch then says not found', async () => {
    api.put(NS, 'doomed', { token: 'x' });
    const p = make({ server, tokenFile: tokenFile(), namespace: NS });
    const ref = parseRef('k8s:doomed#token');
    await p.fetch(ref, ctx);
    const seen: string[] = [];
    const stop = p.watch!([ref], (r) => seen.push(r.raw), ctx);
    await until(() => api.openWatches > 0);
    api.remove(NS, 'doomed');
    await until(() => seen.length === 1);
    await stop();
    expect((await catchSkAsync(() => p.fetch(ref, ctx))).code).toBe('SK_ERR_SOURCE_NOT_FOUND');
  });
});
