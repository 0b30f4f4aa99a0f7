import { writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultRegistry } from '../../../src/providers/index.ts';
import { selectKey } from '../../../src/providers/select-key.ts';
import type { Lease } from '../../../src/providers/types.ts';
import type { VaultSettings } from '../../../src/providers/vault/descriptor.ts';
import { VAULT_MAX_IN_FLIGHT, VaultProvider, vaultProvider } from '../../../src/providers/vault/index.ts';
import { parseRef } from '../../../src/refs.ts';
import { CANARY } from '../../helpers/cli.ts';
import { skErr, text } from '../../helpers/provider.ts';
import { freePort } from '../servers/common.ts';
import { DB_DEFAULT_TTL_S, startVaultWorld, testCtx, type VaultWorld } from './vault-fixture.ts';

// Real OpenBao (dev mode) + real PostgreSQL on loopback, started by this file.

let w: VaultWorld;
const ctx = testCtx();
const fast = { retries: 2, minTimeoutMs: 20, maxTimeoutMs: 50 };

beforeAll(async () => {
  w = await startVaultWorld();
});
afterAll(async () => {
  await w?.stop();
  // Nothing the providers logged may carry a secret value.
  expect(ctx.lines.join('\n')).not.toContain(CANARY);
});

function approle(extra: Partial<VaultSettings> = {}): VaultProvider {
  return new VaultProvider(
    {
      addr: w.bao.addr,
      authMethod: 'approle',
      roleIdFile: w.roleIdFile,
      secretIdFile: w.secretIdFile,
      ...extra,
    },
    { retry: fast },
  );
}

describe('vault provider against a real OpenBao server', () => {
  it('is registered in the default registry and validates refs without I/O', () => {
    const r = defaultRegistry();
    expect(r.has('vault')).toBe(true);
    expect(vaultProvider.needs?.serviceAccountToken).toBe(true);
    expect(() => r.validateRef(parseRef('vault:secret/data/app/db#password'), 'x')).not.toThrow();
    for (const bad of [
      'vault:/secret/app',
      'vault:secret/../sys',
      'vault:secret/app?stage=x',
      'vault:secret/a?version=0',
    ]) {
      expect(() => r.validateRef(parseRef(bad), 'where')).toThrow(/SK_ERR_REF_SYNTAX|where/);
    }
  });

  it('secrets fetched at once share one mount lookup (first sync: not one lookup per secret)', async () => {
    const p = new VaultProvider(
      { addr: w.bao.addr, authMethod: 'token', tokenFile: w.rootTokenFile },
      { retry: fast },
    );
    const refs = ['secret/app/db#username', 'secret/app/db#password', 'secret/other/x', 'secret/data/app/db'];
    const results = await Promise.all(refs.map((r) => p.fetch(parseRef(`vault:${r}`), ctx)));
    expect(results.map((r) => r.version)).toEqual(['kv2:2', 'kv2:2', 'kv2:1', 'kv2:2']);
    // token lookup-self (the login) + one sys/internal/ui/mounts lookup + one read per fetch
    expect(p.stats.requests).toBe(1 + 1 + refs.length);
    await p.close(ctx);
  });

  it('KV v2 (approle): detects the mount, reads secret/app/db and secret/data/app/db alike, reports the version', async () => {
    const p = approle();
    const a = await p.fetch(parseRef('vault:secret/app/db#password'), ctx);
    const b = await p.fetch(parseRef('vault:secret/data/app/db'), ctx);
    expect(a.version).toBe('kv2:2');
    expect(b.version).toBe('kv2:2');
    expect(text(selectKey(a.value, parseRef('vault:secret/app/db#password')))).toBe(CANARY);
    expect(b.value).toEqual({ kind: 'map', data: { username: 'app', password: CANARY } });
    const v1 = await p.fetch(parseRef('vault:secret/app/db?version=1'), ctx);
    expect(v1.version).toBe('kv2:1');
    expect(text(selectKey(v1.value, parseRef('vault:secret/app/db?version=1#password')))).toBe(
      'old-password',
    );
    expect(p.stats.logins).toBe(1);
    await p.close(ctx);
  });

  it('KV v1: reads the data map, version is a keyed content fingerprint that changes only with the content', async () => {
    const p = approle();
    const ref = parseRef('vault:kv1/app/db#nested.port');
    const a = await p.fetch(ref, ctx);
    const b = await p.fetch(ref, ctx);
    expect(a.version).toMatch(/^fp:[0-9a-f]{16}$/);
    expect(b.version).toBe(a.version);
    expect(text(selectKey(a.value, ref))).toBe('5432');
    await w.bao.api('POST', 'kv1/app/db', {
      username: 'app1',
      password: `${CANARY}-2`,
      nested: { port: 5432 },
    });
    const c = await p.fetch(ref, ctx);
    expect(c.version).not.toBe(a.version);
    expect(c.version).not.toContain(CANARY);
    await w.bao.api('POST', 'kv1/app/db', { username: 'app1', password: CANARY, nested: { port: 5432 } });
    await p.close(ctx);
  });

  it('jwt auth: one login shared by concurrent fetches', async () => {
    const p = new VaultProvider(
      { addr: w.bao.addr, authMethod: 'jwt', authPath: 'auth/jwt', role: 'app', jwtFile: w.jwtFile },
      { retry: fast },
    );
    const refs = ['secret/app/db', 'kv1/app/db', 'secret/data/app/db'].map((l) => parseRef(`vault:${l}`));
    const results = await Promise.all([...refs, ...refs].map((r) => p.fetch(r, ctx)));
    expect(results).toHaveLength(6);
    expect(p.stats.logins).toBe(1);
    await p.close(ctx);
  });

  it('many secrets at once: every one read, never more than a few requests in flight', async () => {
    for (let i = 0; i < 40; i++) await w.bao.api('POST', `secret/data/app/many-${i}`, { data: { i } });
    const p = approle();
    const refs = Array.from({ length: 40 }, (_, i) => parseRef(`vault:secret/app/many-${i}#i`));
    const out = await Promise.all(refs.map((r) => p.fetch(r, ctx)));
    out.forEach((r, i) => {
      expect(text(selectKey(r.value, refs[i]!))).toBe(String(i));
    });
    expect(p.peakInFlight).toBeGreaterThan(1);
    expect(p.peakInFlight).toBeLessThanOrEqual(VAULT_MAX_IN_FLIGHT);
    expect(p.stats.logins).toBe(1);
    await p.close(ctx);
  });

  it('token auth from a file', async () => {
    const p = new VaultProvider(
      { addr: w.bao.addr, authMethod: 'token', tokenFile: w.rootTokenFile },
      { retry: fast },
    );
    const r = await p.fetch(parseRef('vault:secret/other/x'), ctx);
    expect(r.version).toBe('kv2:1');
    await p.close(ctx);
  });

  it('auth failure names the method, role and mount (a JWT signed by an untrusted key)', async () => {
    const p = new VaultProvider(
      { addr: w.bao.addr, authMethod: 'jwt', authPath: 'jwt', role: 'app', jwtFile: w.badJwtFile },
      { retry: fast },
    );
    const e = await skErr(p.fetch(parseRef('vault:secret/app/db'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_AUTH');
    expect(e.message).toContain('role "app"');
    expect(e.message).toContain('auth/jwt');
    expect(e.message).not.toMatch(/eyJ/); // no JWT in the message
  });

  it('approle with a wrong secret id → SK_ERR_BACKEND_AUTH naming the mount', async () => {
    const bad = path.join(w.dir, 'bad-secret-id');
    writeFileSync(bad, '00000000-0000-0000-0000-000000000000');
    const p = approle({ secretIdFile: bad });
    const e = await skErr(p.fetch(parseRef('vault:secret/app/db'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_AUTH');
    expect(e.message).toContain('auth/approle');
    expect(e.message).not.toContain('00000000-0000');
  });

  it('a policy denial is SK_ERR_BACKEND_DENIED naming the path, without new logins or retry storms', async () => {
    const p = approle();
    await p.fetch(parseRef('vault:secret/app/db'), ctx);
    const before = { ...p.stats };
    const errs = await Promise.all(
      Array.from({ length: 5 }, () => skErr(p.fetch(parseRef('vault:secret/data/other/x#password'), ctx))),
    );
    for (const e of errs) {
      expect(e.code).toBe('SK_ERR_BACKEND_DENIED');
      expect(e.message).toContain('secret/data/other/x');
      expect(e.message).not.toContain('not-for-app');
    }
    expect(p.stats.logins).toBe(before.logins);
    // 5 reads + at most one (rate-limited) token check; a 403 is never retried.
    expect(p.stats.requests - before.requests).toBeLessThanOrEqual(5 + 1 + 5);
    await p.close(ctx);
  });

  it('a missing path is SK_ERR_SOURCE_NOT_FOUND naming the ref', async () => {
    const p = approle();
    const e = await skErr(p.fetch(parseRef('vault:secret/app/missing#x'), ctx));
    expect(e.code).toBe('SK_ERR_SOURCE_NOT_FOUND');
    expect(e.message).toContain('vault:secret/app/missing#x');
    const e1 = await skErr(p.fetch(parseRef('vault:kv1/app/missing'), ctx));
    expect(e1.code).toBe('SK_ERR_SOURCE_NOT_FOUND');
  });

  it('an unreachable server is SK_ERR_BACKEND_UNAVAILABLE after bounded retries', async () => {
    const port = await freePort();
    const p = new VaultProvider(
      { addr: `http://127.0.0.1:${port}`, authMethod: 'token', tokenFile: w.rootTokenFile, timeout: '2s' },
      { retry: fast },
    );
    const e = await skErr(p.fetch(parseRef('vault:secret/app/db'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toMatch(/unreachable \(ECONNREFUSED\)/);
    expect(p.stats.requests).toBe(1 + fast.retries);
  });

  it('renews its own token before it expires, and logs in again when it reaches its max TTL', async () => {
    await w.bao.api('POST', 'auth/approle/role/short', {
      token_policies: ['app-read'],
      token_ttl: '3s',
      token_max_ttl: '5s',
    });
    const roleId = (await w.bao.api('GET', 'auth/approle/role/short/role-id')).data.role_id as string;
    const secretId = (await w.bao.api('POST', 'auth/approle/role/short/secret-id', {})).data
      .secret_id as string;
    writeFileSync(path.join(w.dir, 'short-role'), roleId);
    writeFileSync(path.join(w.dir, 'short-secret'), secretId);
    const p = approle({
      roleIdFile: path.join(w.dir, 'short-role'),
      secretIdFile: path.join(w.dir, 'short-secret'),
    });
    await p.fetch(parseRef('vault:secret/app/db'), ctx);
    expect(p.stats.logins).toBe(1);
    await new Promise((r) => setTimeout(r, 2600));
    expect(p.stats.tokenRenewals).toBe(1); // renewed at 2/3 of 3 s
    await new Promise((r) => setTimeout(r, 3000));
    // the renewal could not pass max TTL (5 s): a new login, then reads keep working
    const r = await p.fetch(parseRef('vault:secret/app/db'), ctx);
    expect(r.version).toBe('kv2:2');
    expect(p.stats.logins).toBe(2);
    await p.close(ctx);
  });

  it('re-logs in once when its token was revoked behind its back', async () => {
    const p = approle();
    await p.fetch(parseRef('vault:secret/app/db'), ctx);
    // revoke every token of the approle mount (as an operator would)
    await w.bao.api('POST', 'sys/leases/revoke-prefix/auth/approle/login', {});
    const r = await p.fetch(parseRef('vault:secret/app/db'), ctx);
    expect(r.version).toBe('kv2:2');
    expect(p.stats.logins).toBe(2);
    await p.close(ctx);
  });
});

describe('vault dynamic database credentials against a real PostgreSQL', () => {
  async function canLogin(user: string, password: string): Promise<boolean> {
    const c = new pg.Client({ host: '127.0.0.1', port: w.pg.port, user, password, database: 'postgres' });
    try {
      await c.connect();
      const r = await c.query('select current_user as u');
      return r.rows[0]?.u === user;
    } catch {
      return false;
    } finally {
      await c.end().catch(() => {});
    }
  }

  it('issues credentials with a lease, renews it, refuses past max TTL, revokes on shutdown', async () => {
    const p = approle({ revokeOnShutdown: true });
    const ref = parseRef('vault:database/creds/app');
    const r = await p.fetch(ref, ctx);
    expect(r.lease).toBeDefined();
    const lease = r.lease as Lease;
    expect(lease.id.startsWith('database/creds/app/')).toBe(true);
    expect(lease.ttlMs).toBe(DB_DEFAULT_TTL_S * 1000);
    expect(lease.renewable).toBe(true);
    expect(r.version).toMatch(/^fp:/);
    const user = text(selectKey(r.value, parseRef('vault:database/creds/app#username')));
    const pass = text(selectKey(r.value, parseRef('vault:database/creds/app#password')));
    expect(await canLogin(user, pass)).toBe(true);

    // renew at ~2/3 of the TTL: the same credentials stay valid past their first expiry
    let cur = lease;
    await new Promise((res) => setTimeout(res, 4000));
    cur = await p.renew(cur, ctx);
    expect(cur.ttlMs).toBe(DB_DEFAULT_TTL_S * 1000);
    await new Promise((res) => setTimeout(res, 4000));
    cur = await p.renew(cur, ctx); // t≈8 s: past the first 6 s TTL
    expect(await canLogin(user, pass)).toBe(true);
    await new Promise((res) => setTimeout(res, 4000));
    // t≈12 s: only ~3 s left before max TTL (15 s): the renewal is capped → refused
    const e = await skErr(p.renew(cur, ctx));
    expect(e.code).toBe('SK_ERR_LEASE_NOT_RENEWABLE');
    expect(e.message).toContain('max TTL');

    // a re-fetch issues a new set while the old one is still valid
    const r2 = await p.fetch(ref, ctx);
    const user2 = text(selectKey(r2.value, parseRef('vault:database/creds/app#username')));
    const pass2 = text(selectKey(r2.value, parseRef('vault:database/creds/app#password')));
    expect(user2).not.toBe(user);
    expect(r2.version).not.toBe(r.version);
    expect(await canLogin(user2, pass2)).toBe(true);

    // close() revokes both leases: the database users are dropped
    await p.close(ctx);
    expect(await canLogin(user2, pass2)).toBe(false);
  }, 60_000);
});

describe('vault dynamic secrets shared by several secrets', () => {
  it('reads of the same path share one credential set and one renewal', async () => {
    const p = approle();
    const [a, b] = await Promise.all([
      p.fetch(parseRef('vault:database/creds/app#username'), ctx),
      p.fetch(parseRef('vault:database/creds/app#password'), ctx),
    ]);
    expect(a.lease?.id).toBeDefined();
    expect(b.lease?.id).toBe(a.lease?.id);
    expect(b.version).toBe(a.version);
    const [r1, r2] = await Promise.all([p.renew(a.lease!, ctx), p.renew(b.lease!, ctx)]);
    expect(r2).toEqual(r1);
    expect(p.stats.leaseRenewals).toBe(1);
    await p.close(ctx);
  });
});

describe('vault rate limiting (real OpenBao rate-limit quota → 429)', () => {
  it('429s are retried with backoff, bounded, with one login', async () => {
    await w.bao.api('POST', 'sys/quotas/rate-limit/kv-slow', { path: 'secret/', rate: 2, interval: '1s' });
    try {
      const p = new VaultProvider(
        { addr: w.bao.addr, authMethod: 'token', tokenFile: w.rootTokenFile },
        { retry: { retries: 4, minTimeoutMs: 400, maxTimeoutMs: 1500 } },
      );
      await p.fetch(parseRef('vault:secret/app/db'), ctx); // mount detected, first read
      await new Promise((r) => setTimeout(r, 1100));
      const before = p.stats.requests;
      const results = await Promise.all(
        Array.from({ length: 6 }, () => p.fetch(parseRef('vault:secret/app/db'), ctx)),
      );
      expect(results.every((r) => r.version === 'kv2:2')).toBe(true);
      const sent = p.stats.requests - before;
      expect(sent).toBeGreaterThan(6); // some reads were refused with 429 and retried...
      expect(sent).toBeLessThanOrEqual(6 * 5); // ...within the bound
      expect(p.stats.logins).toBe(1);
      await p.close(ctx);
    } finally {
      await w.bao.api('DELETE', 'sys/quotas/rate-limit/kv-slow');
    }
  });
});

describe('vault sealed', () => {
  it('a sealed server is SK_ERR_BACKEND_UNAVAILABLE "sealed"', async () => {
    const p = new VaultProvider(
      { addr: w.bao.addr, authMethod: 'token', tokenFile: w.rootTokenFile },
      { retry: fast },
    );
    await p.fetch(parseRef('vault:secret/app/db'), ctx);
    await w.bao.api('PUT', 'sys/seal');
    const e = await skErr(p.fetch(parseRef('vault:secret/app/db'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toMatch(/sealed/);
  });
});
