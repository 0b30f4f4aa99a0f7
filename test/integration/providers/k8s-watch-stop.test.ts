import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../../src/log.js';
import { createK8sProvider } from '../../../src/providers/k8s/index.js';
import { parseRef } from '../../../src/refs.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sidekey-k8s-stop-'));
const sockets = new Set<net.Socket>();
// An API server that accepts connections and never answers: the watch request waits for headers.
const silent = net.createServer((s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('k8s watch against an API server that never answers', () => {
  it('stop() returns although the watch request has no answer yet', async () => {
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as net.AddressInfo;
    const tokenFile = path.join(dir, 'token');
    writeFileSync(tokenFile, 'sa-token-for-tests');
    const p = createK8sProvider({ server: `http://127.0.0.1:${port}`, tokenFile, namespace: 'ns' });
    const ctx = { signal: new AbortController().signal, log: silentLogger };
    const unwatch = p.watch!([parseRef('k8s:db#password')], () => {}, ctx);
    // wait until the watch request is on the wire
    for (let i = 0; i < 200 && sockets.size === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(sockets.size).toBeGreaterThan(0);
    const outcome = await Promise.race([
      Promise.resolve(unwatch()).then(() => 'stopped'),
      new Promise((r) => setTimeout(() => r('still waiting after 5 s'), 5000).unref()),
    ]);
    expect(outcome).toBe('stopped');
  });
});

describe('k8s watch logs', () => {
  it('name the Secret (in a field the log redaction leaves alone)', async () => {
    // An API server that hangs up at once: every watch fails and is retried.
    const rude = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => rude.listen(0, '127.0.0.1', r));
    const { port } = rude.address() as net.AddressInfo;
    const tokenFile = path.join(dir, 'token2');
    writeFileSync(tokenFile, 'sa-token-for-tests');
    let logs = '';
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => {
      logs += c.toString();
    });
    const p = createK8sProvider(
      { server: `http://127.0.0.1:${port}`, tokenFile, namespace: 'ns' },
      { initialBackoffMs: 20, maxBackoffMs: 40, minWatchMs: 10 },
    );
    const ctx = {
      signal: new AbortController().signal,
      log: createLogger({ destination: sink, level: 'debug' }),
    };
    const unwatch = p.watch!([parseRef('k8s:db#password')], () => {}, ctx);
    try {
      for (let i = 0; i < 300 && !logs.includes('k8s watch failed'); i++)
        await new Promise((r) => setTimeout(r, 10));
      const line = logs.split('\n').find((l) => l.includes('k8s watch failed'));
      expect(line).toBeDefined();
      expect(JSON.parse(line!)).toMatchObject({ k8sSecret: 'db' });
    } finally {
      await unwatch();
      await new Promise((r) => rude.close(r));
    }
  });
});
