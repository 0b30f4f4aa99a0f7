import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { deferredObserver } from '../../../sidecar/agent.ts';
import { type AgentListener, startAgentListener } from '../../../sidecar/metrics.ts';
import { Engine } from '../../../src/engine.ts';
import { silentLogger } from '../../../src/log.ts';
import { defaultRegistry } from '../../../src/providers/index.ts';
import { resolveSpec } from '../../../src/spec.ts';

const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function get(l: AgentListener, p: string, method = 'GET') {
  const res = await fetch(`http://127.0.0.1:${l.address.port}${p}`, { method });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
}

/** The value of one sample in Prometheus text, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A listener on a free loopback port with no engine behind it (yet), closed after the test. */
async function listenerWithoutEngine(): Promise<AgentListener> {
  const l = await startAgentListener({
    port: 0,
    address: '127.0.0.1',
    log: silentLogger,
    status: () => undefined,
  });
  cleanups.push(() => l.close());
  return l;
}

async function until(what: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the agent listener (real engine, file: source)', () => {
  test('healthz, readyz before/after the first write and past maxStale, metrics without values', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-metrics-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'a.yaml'), `password: ${CANARY}\n`);
    const spec = resolveSpec(
      {
        apiVersion: 'sidekey.io/v1',
        kind: 'SecretSpec',
        output: { dir: path.join(dir, 'out') },
        refresh: '200ms',
        backoff: { initial: '100ms', max: '200ms' },
        maxStale: { after: '600ms', action: 'keep' },
        agent: { metrics: { port: 1 } },
        secrets: { a: { ref: 'file:a.yaml#password' } },
      },
      { baseDir: dir },
    );
    let engine: Engine | undefined;
    const l = await startAgentListener({
      port: 0,
      address: '127.0.0.1',
      log: silentLogger,
      status: () => engine?.status(),
    });
    cleanups.push(() => l.close());
    expect(await get(l, '/healthz')).toMatchObject({ status: 200, text: 'ok\n' });
    expect(await get(l, '/readyz')).toMatchObject({
      status: 503,
      text: 'not ready: no complete write yet\n',
    });
    engine = new Engine(spec, { registry: defaultRegistry(), log: silentLogger, observer: l.observer });
    cleanups.push(() => engine!.stop());
    await engine.start();

    expect(await get(l, '/readyz')).toMatchObject({ status: 200, text: 'ready\n' });
    const m = await get(l, '/metrics');
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sample(m.text, 'sidekey_agent_ready')).toBe(1);
    expect(sample(m.text, 'sidekey_secret_refresh_age_seconds{secret="a"}')).toBeLessThan(5);
    expect(sample(m.text, 'sidekey_secret_version_age_seconds{secret="a"}')).toBeGreaterThanOrEqual(0);
    expect(sample(m.text, 'sidekey_secret_stale{secret="a"}')).toBe(0);
    expect(sample(m.text, 'sidekey_backend_calls_total{backend="file",op="fetch"}')).toBeGreaterThanOrEqual(
      1,
    );
    expect(m.text).toContain(
      'sidekey_backend_call_duration_seconds_bucket{le="0.001",backend="file",op="fetch"}',
    );
    // Stock process metrics, no sidekey prefix.
    expect(m.text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(m.text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
    // No lease, no lease gauge.
    expect(m.text).not.toContain('sidekey_secret_lease_remaining_seconds{');
    expect(m.text).not.toContain(CANARY);

    // The source disappears: failures by code, then stale, then /readyz says so by name.
    unlinkSync(path.join(dir, 'a.yaml'));
    await until(async () => (await get(l, '/readyz')).status === 503);
    expect((await get(l, '/readyz')).text).toBe('not ready: past maxStale: a\n');
    const m2 = (await get(l, '/metrics')).text;
    expect(
      sample(m2, 'sidekey_secret_refresh_failures_total{secret="a",code="SK_ERR_SOURCE_NOT_FOUND"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(sample(m2, 'sidekey_secret_stale{secret="a"}')).toBe(1);
    expect(sample(m2, 'sidekey_secret_failing{secret="a"}')).toBe(1);
    expect(sample(m2, 'sidekey_agent_ready')).toBe(0);
    expect(m2).toMatch(
      /^sidekey_backend_errors_total\{backend="file",op="fetch",code="SK_ERR_SOURCE_NOT_FOUND"\} [1-9]/m,
    );

    // Back: ready again.
    writeFileSync(path.join(dir, 'a.yaml'), `password: ${CANARY}-2\n`);
    await until(async () => (await get(l, '/readyz')).status === 200);
    expect((await get(l, '/metrics')).text).not.toContain(CANARY);
  });

  test('404 elsewhere, 405 for other methods, HEAD answers without a body', async () => {
    const l = await listenerWithoutEngine();
    expect((await get(l, '/')).status).toBe(404);
    expect((await get(l, '/metrics', 'POST')).status).toBe(405);
    expect(await get(l, '/healthz', 'HEAD')).toMatchObject({ status: 200, text: '' });
    // Before the engine exists: metrics still answer (process metrics), ready is 0.
    expect(sample((await get(l, '/metrics')).text, 'sidekey_agent_ready')).toBe(0);
  });

  test('a port in use is SK_ERR_LISTEN naming agent.metrics and the address', async () => {
    const l = await listenerWithoutEngine();
    await expect(
      startAgentListener({
        port: l.address.port,
        address: '127.0.0.1',
        log: silentLogger,
        status: () => undefined,
      }),
    ).rejects.toMatchObject({
      code: 'SK_ERR_LISTEN',
      message: expect.stringMatching(
        /^agent\.metrics: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\); another container/,
      ),
    });
  });
});

describe('deferredObserver', () => {
  test('holds events until the real observer is attached, replays them in order, then forwards', () => {
    const seen: string[] = [];
    const d = deferredObserver();
    d.observer.backendCall?.('vault', 'fetch', 0.01, undefined);
    d.observer.refreshed?.('a', 1);
    expect(seen).toEqual([]);
    d.attach({
      backendCall: (p, op, _s, code) => void seen.push(`${p} ${op} ${code ?? 'ok'}`),
      refreshed: (s) => void seen.push(`ok ${s}`),
      refreshFailed: (s, code) => void seen.push(`failed ${s} ${code}`),
    });
    expect(seen).toEqual(['vault fetch ok', 'ok a']);
    d.observer.refreshFailed?.('a', 'SK_ERR_BACKEND_UNAVAILABLE', 2);
    expect(seen.at(-1)).toBe('failed a SK_ERR_BACKEND_UNAVAILABLE');
  });
});
