import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { VaultProvider } from '../../../src/providers/vault/index.ts';
import { parseRef } from '../../../src/refs.ts';
import { skErr } from '../../helpers/provider.ts';
import { testCtx } from './vault-fixture.ts';

/**
 * The Vault transport against servers that answer badly, on loopback (raw TCP, so each can answer
 * exactly as broken as a real proxy or a wrong server does): what the error says, and that a
 * request never outlives its timeout or its signal.
 */

type Answer = (socket: net.Socket) => void;
const servers: net.Server[] = [];

async function server(answer: Answer): Promise<{ addr: string; requests: () => number }> {
  let n = 0;
  const srv = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => {
      n++;
      answer(s);
    });
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { addr: `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`, requests: () => n };
}

afterEach(() => {
  for (const s of servers.splice(0)) {
    s.close();
  }
});

function provider(addr: string, timeout = '5s'): VaultProvider {
  return new VaultProvider(
    { addr, authMethod: 'token', timeout },
    {
      env: { VAULT_TOKEN: 'hvs.test-token-value' },
      retry: { retries: 2, minTimeoutMs: 10, maxTimeoutMs: 20 },
    },
  );
}

const ref = parseRef('vault:secret/data/app#password');

describe('vault transport: bad answers', () => {
  it('bytes that are not HTTP are SK_ERR_BACKEND_RESPONSE "not HTTP", not "unreachable"', async () => {
    const s = await server((sock) => sock.end('\u0000\u0001garbage that is not HTTP at all\r\n\r\n'));
    const p = provider(s.addr);
    const e = await skErr(p.fetch(ref, testCtx()));
    expect(e.code).toBe('SK_ERR_BACKEND_RESPONSE');
    expect(e.message).toMatch(/vault answered something that is not HTTP \(HPE_/);
    expect(e.message).not.toContain('unreachable');
    await p.close(testCtx());
  });

  it('a 200 whose body is not JSON is SK_ERR_BACKEND_RESPONSE, not retried', async () => {
    const body = '<html>not json';
    const s = await server((sock) =>
      sock.end(
        `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      ),
    );
    const p = provider(s.addr);
    const e = await skErr(p.fetch(ref, testCtx()));
    expect(e.code).toBe('SK_ERR_BACKEND_RESPONSE');
    expect(e.message).toContain('vault answered 200 with a body that is not JSON');
    expect(e.message).not.toContain('unreachable');
    expect(e.message).not.toContain('<html>');
    expect(s.requests()).toBe(1);
    await p.close(testCtx());
  });

  it('an answer cut off mid-body says so, and is retried (bounded)', async () => {
    const s = await server((sock) =>
      sock.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"data":'),
    );
    const p = provider(s.addr);
    const e = await skErr(p.fetch(ref, testCtx()));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toContain('vault answer cut off');
    expect(s.requests()).toBe(3); // 1 + 2 retries
    await p.close(testCtx());
  });

  it('a server trickling its answer is ended by the whole-request timeout (not an inactivity timer)', async () => {
    const s = await server((sock) => {
      sock.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n');
      const t = setInterval(() => sock.write('{'), 50);
      sock.on('close', () => clearInterval(t));
    });
    const p = provider(s.addr, '300ms');
    const t0 = Date.now();
    const e = await skErr(p.fetch(ref, testCtx()));
    // 3 attempts of 300 ms and two short waits, not forever
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toContain('vault timed out');
    await p.close(testCtx());
  });

  it("the call's signal ends a hung request at once, naming why", async () => {
    const s = await server(() => {});
    const p = provider(s.addr, '30s');
    const ctx = testCtx();
    const t0 = Date.now();
    setTimeout(() => ctx.abort.abort(new Error('stopping')), 200);
    const e = await skErr(p.fetch(ref, ctx));
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(s.requests()).toBe(1);
    await p.close(testCtx());
  });

  it('no retry is started that could not finish before the deadline: the real cause is reported', async () => {
    const s = await server((sock) =>
      sock.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}'),
    );
    const p = new VaultProvider(
      { addr: s.addr, authMethod: 'token' },
      {
        env: { VAULT_TOKEN: 'hvs.test-token-value' },
        retry: { retries: 5, minTimeoutMs: 300, maxTimeoutMs: 4000 },
      },
    );
    const t0 = Date.now();
    const e = await skErr(p.fetch(ref, { ...testCtx(), deadline: t0 + 1000 }));
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toContain('503');
    expect(s.requests()).toBeLessThan(6);
    await p.close(testCtx());
  });

  it("an error page that is not JSON (a proxy's 502) is that status, retried; requests go to <addr>/v1 with the namespace", async () => {
    const heads: string[] = [];
    const page = '<html><body>502 Bad Gateway</body></html>';
    const srv = net.createServer((sock) => {
      sock.on('error', () => {});
      sock.once('data', (d: Buffer) => {
        heads.push(d.toString('latin1').split('\r\n\r\n')[0] ?? '');
        sock.end(
          `HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: ${page.length}\r\nConnection: close\r\n\r\n${page}`,
        );
      });
    });
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const addr = `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}/behind/proxy/`;
    const p = new VaultProvider(
      { addr, authMethod: 'token', timeout: '5s' },
      {
        env: { VAULT_TOKEN: 'hvs.test-token-value', VAULT_NAMESPACE: 'team-a' },
        retry: { retries: 2, minTimeoutMs: 10, maxTimeoutMs: 20 },
      },
    );
    const e = await skErr(p.fetch(ref, testCtx()));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toContain('502');
    expect(e.message).not.toContain('<html>');
    // 1 + 2 retries, every one under the address's own path, with the namespace and the token
    expect(heads).toHaveLength(3);
    for (const h of heads) {
      expect(h).toMatch(/^[A-Z]+ \/behind\/proxy\/v1\/\S+ HTTP\/1\.1\r\n/);
      expect(h).toMatch(/\r\nx-vault-namespace: team-a(\r\n|$)/i);
      expect(h).toMatch(/\r\nx-vault-token: hvs\.test-token-value(\r\n|$)/i);
    }
    await p.close(testCtx());
  });
});
