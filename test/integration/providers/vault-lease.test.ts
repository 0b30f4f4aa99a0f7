import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type WriteReport } from '../../../src/engine.ts';
import { silentLogger } from '../../../src/log.ts';
import { ProviderRegistry } from '../../../src/providers/registry.ts';
import type { Lease, Provider } from '../../../src/providers/types.ts';
import { vaultProvider } from '../../../src/providers/vault/index.ts';
import { resolveSpec } from '../../../src/spec.ts';
import { DB_DEFAULT_TTL_S, DB_MAX_TTL_S, startVaultWorld, type VaultWorld } from './vault-fixture.ts';

// The real Engine (src/engine.ts) with the real writer, driving the vault provider against a real
// OpenBao whose database secrets engine issues real PostgreSQL users with a 6 s TTL and 15 s max TTL.

let w: VaultWorld;
let out: string;

beforeAll(async () => {
  w = await startVaultWorld();
  out = mkdtempSync(path.join(os.tmpdir(), 'sidekey-lease-out-'));
});
afterAll(async () => {
  await w?.stop();
  rmSync(out, { recursive: true, force: true });
});

interface Call {
  op: 'fetch' | 'renew';
  at: number;
  ok: boolean;
  ttlMs?: number;
  leaseId?: string;
}

/** The vault factory, with every fetch/renew of the provider it creates recorded. */
function recordingRegistry(calls: Call[]): ProviderRegistry {
  return new ProviderRegistry().register({
    ...vaultProvider,
    create(backends) {
      const p = vaultProvider.create(backends);
      const wrapped: Provider = {
        name: p.name,
        async fetch(ref, ctx) {
          const r = await p.fetch(ref, ctx);
          calls.push({ op: 'fetch', at: Date.now(), ok: true, ttlMs: r.lease?.ttlMs, leaseId: r.lease?.id });
          return r;
        },
        async renew(lease: Lease, ctx) {
          try {
            const l = await p.renew!(lease, ctx);
            calls.push({ op: 'renew', at: Date.now(), ok: true, ttlMs: l.ttlMs });
            return l;
          } catch (e) {
            calls.push({ op: 'renew', at: Date.now(), ok: false });
            throw e;
          }
        },
        close: (ctx) => p.close!(ctx),
      };
      return wrapped;
    },
  });
}

async function login(url: { user: string; password: string }): Promise<string | null> {
  const c = new pg.Client({ host: '127.0.0.1', port: w.pg.port, database: 'postgres', ...url });
  try {
    await c.connect();
    return (await c.query('select current_user as u')).rows[0]?.u ?? null;
  } catch {
    return null;
  } finally {
    await c.end().catch(() => {});
  }
}

describe('lease-aware rotation with the real Engine, OpenBao and PostgreSQL', () => {
  it('renews at ~2/3 TTL, re-issues only when max TTL caps the lease, rewrites atomically, app reconnects', async () => {
    const calls: Call[] = [];
    const writes: WriteReport[] = [];
    const spec = resolveSpec({
      apiVersion: 'sidekey.io/v1',
      kind: 'SecretSpec',
      output: { dir: out },
      refresh: '1h', // only the lease drives rotation here
      backends: {
        vault: {
          addr: w.bao.addr,
          authMethod: 'approle',
          roleIdFile: w.roleIdFile,
          secretIdFile: w.secretIdFile,
          revokeOnShutdown: true,
        },
      },
      secrets: {
        'db.json': { ref: 'vault:database/creds/app', format: 'json' },
        'db-user': { ref: 'vault:database/creds/app#username' },
      },
    });
    const engine = new Engine(spec, {
      registry: recordingRegistry(calls),
      log: silentLogger,
      onWrite: (r) => writes.push(r),
    });
    const t0 = Date.now();
    await engine.start();
    const read = () =>
      JSON.parse(readFileSync(path.join(out, 'db.json'), 'utf8')) as { username: string; password: string };
    const first = read();
    expect(readFileSync(path.join(out, 'db-user'), 'utf8')).toBe(first.username);
    expect(await login({ user: first.username, password: first.password })).toBe(first.username);

    // Run past the max TTL of the first lease (15 s) and a bit.
    await new Promise((r) => setTimeout(r, (DB_MAX_TTL_S + 2) * 1000));
    await engine.idle();

    const fetches = calls.filter((c) => c.op === 'fetch');
    const renewals = calls.filter((c) => c.op === 'renew' && c.ok);
    // Credential sets issued by OpenBao: the first, and one re-issue when the max TTL capped renewal.
    // (Both secrets read the same path: they share one set, never two.)
    const leases = [...new Set(fetches.map((c) => c.leaseId))];
    expect(leases).toHaveLength(2);
    expect(fetches).toHaveLength(2); // one fetch per set: the engine moves the pair together
    const reissueAt = fetches.find((c) => c.leaseId === leases[1])!.at - t0;
    // never re-issued before 2/3 of the TTL; renewed (not re-fetched) before the cap
    expect(reissueAt).toBeGreaterThan((DB_DEFAULT_TTL_S * 1000 * 2) / 3);
    expect(renewals.length).toBeGreaterThanOrEqual(2);
    expect(renewals[0]!.at - t0).toBeGreaterThanOrEqual((DB_DEFAULT_TTL_S * 1000 * 2) / 3 - 500);
    // the re-issue happens before the old credentials run out at max TTL
    expect(reissueAt).toBeLessThan(DB_MAX_TTL_S * 1000);

    // the new set was written (whole files, atomically) and the app can log in with it
    const second = read();
    expect(second.username).not.toBe(first.username);
    expect(readFileSync(path.join(out, 'db-user'), 'utf8')).toBe(second.username);
    // one write carrying both files of the new set: the app never sees a user of one set and a
    // password of another
    const rotations = writes.filter((r) => !r.first);
    expect(rotations).toHaveLength(1);
    expect([...rotations[0]!.changedFiles].sort()).toEqual(['db-user', 'db.json']);
    expect(await login({ user: second.username, password: second.password })).toBe(second.username);
    // the first set expired at its max TTL
    expect(await login({ user: first.username, password: first.password })).toBeNull();

    const status = JSON.parse(readFileSync(path.join(out, '.sidekey-status.json'), 'utf8'));
    expect(JSON.stringify(status)).not.toContain(second.password);

    await engine.stop(); // revokeOnShutdown: the current user is dropped
    expect(await login({ user: second.username, password: second.password })).toBeNull();
  }, 60_000);
});
