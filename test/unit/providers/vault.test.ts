import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SkError } from '../../../src/errors.ts';
import { silentLogger } from '../../../src/log.ts';
import { sanitiseVaultText, VaultProvider, vaultProvider } from '../../../src/providers/vault/index.ts';
import { parseRef } from '../../../src/refs.ts';

const validate = (raw: string) => vaultProvider.validateRef(parseRef(raw), 'secrets.x.ref');

describe('vault: validateRef (syntax only)', () => {
  it('accepts API paths of KV v1/v2 and dynamic engines', () => {
    for (const r of [
      'vault:secret/data/app/db#password',
      'vault:secret/app/db',
      'vault:kv/team-a/app.config',
      'vault:database/creds/app',
      'vault:secret/app/db?version=3#k',
    ]) {
      expect(() => validate(r)).not.toThrow();
    }
  });

  it('refuses leading slashes, v1/, dot segments, unknown options and bad versions, naming where', () => {
    for (const r of [
      'vault:/secret/app',
      'vault:v1/secret/app',
      'vault:secret/../sys/raw',
      'vault:secret//app',
      'vault:secret/app?stage=AWSCURRENT',
      'vault:secret/app?version=0',
      'vault:secret/app?version=abc',
      'vault:secret/a b',
    ]) {
      let err: unknown;
      try {
        validate(r);
      } catch (e) {
        err = e;
      }
      expect(err, r).toBeInstanceOf(SkError);
      expect((err as SkError).code).toBe('SK_ERR_REF_SYNTAX');
      expect((err as SkError).message).toContain('secrets.x.ref');
    }
  });

  it('never throws anything but SK_ERR_REF_SYNTAX on arbitrary locators', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (loc) => {
        const ref = { raw: `vault:${loc}`, provider: 'vault', locator: loc, options: {}, key: undefined };
        try {
          vaultProvider.validateRef(ref, 'w');
        } catch (e) {
          expect((e as SkError).code).toBe('SK_ERR_REF_SYNTAX');
        }
      }),
    );
  });
});

describe('vault: settings and messages', () => {
  it('needs a service-account token (kubernetes auth)', () => {
    expect(vaultProvider.needs).toEqual({ serviceAccountToken: true });
  });

  it('refuses a missing or non-http addr with SK_ERR_BACKEND_CONFIG', () => {
    expect(() => new VaultProvider({}, { env: {} })).toThrow(/backends\.vault\.addr/);
    expect(() => new VaultProvider({ addr: 'ftp://x' }, { env: {} })).toThrow(/not http/);
    expect(() => new VaultProvider({}, { env: { VAULT_ADDR: 'http://127.0.0.1:8200' } })).not.toThrow();
  });

  it('sanitises Vault error text: tokens, request ids and uuids are removed', () => {
    const s = sanitiseVaultText(
      'permission denied\n token hvs.CAESIAbcdefghijklmnopqrstuv request_id=0a1b2c3d-1111-2222-3333-444455556666 for s.AbCdEfGh12345678',
    );
    expect(s).not.toMatch(/hvs\.|s\.AbCd|0a1b2c3d/);
    expect(s).toContain('permission denied');
    expect(s).not.toContain('\n');
  });

  it('sanitises a JWT echoed in Vault error text', () => {
    const jwt = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from('{"sub":"SKCANARY-7f3c9e2a-do-not-print"}').toString('base64url')}.c2ln`;
    const s = sanitiseVaultText(`error validating token: ${jwt} is expired`);
    expect(s).toBe('error validating token: <jwt> is expired');
  });
});

describe('vault: error messages (API emulator)', () => {
  it('a failed mount lookup names the ref, like the read itself', async () => {
    // Answers the token lookup (the login) and fails sys/internal/ui/mounts with a 500.
    const server = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/v1/auth/token/lookup-self') {
        res.end(JSON.stringify({ data: { ttl: 0, renewable: false } }));
        return;
      }
      res.statusCode = 500;
      res.end(JSON.stringify({ errors: ['internal error'] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const addr = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const p = new VaultProvider(
        { addr, authMethod: 'token' },
        {
          env: { VAULT_TOKEN: 'hvs.test-token-for-emulator' },
          retry: { retries: 0, minTimeoutMs: 1, maxTimeoutMs: 1 },
        },
      );
      const ctx = { signal: new AbortController().signal, log: silentLogger };
      const err = await p.fetch(parseRef('vault:secret/app/db#password'), ctx).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'SK_ERR_BACKEND_UNAVAILABLE' });
      expect((err as SkError).message).toBe(
        'vault:secret/app/db#password: vault read sys/internal/ui/mounts/secret/app/db: vault answered 500 after retries (internal error)',
      );
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('vault: revokeOnShutdown (API emulator)', () => {
  it('revokes the leases still running, not the ones that ran out', async () => {
    const revoked: string[] = [];
    let seq = 0;
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        if (req.url === '/v1/auth/token/lookup-self') {
          res.end(JSON.stringify({ data: { ttl: 0, renewable: false } }));
        } else if (req.url === '/v1/database/creds/app') {
          seq++;
          res.end(
            JSON.stringify({
              lease_id: `database/creds/app/lease${seq}`,
              lease_duration: 60,
              renewable: true,
              data: { username: `u${seq}`, password: 'SKCANARY-7f3c9e2a-do-not-print' },
            }),
          );
        } else if (req.url === '/v1/sys/leases/revoke') {
          revoked.push((JSON.parse(body) as { lease_id: string }).lease_id);
          res.statusCode = 204;
          res.end();
        } else {
          res.statusCode = 404; // no mount lookup: read the path as written
          res.end(JSON.stringify({ errors: [] }));
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      let now = 1_700_000_000_000;
      const p = new VaultProvider(
        {
          addr: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          authMethod: 'token',
          revokeOnShutdown: true,
        },
        {
          env: { VAULT_TOKEN: 'hvs.test-token-for-emulator' },
          now: () => now,
          retry: { retries: 0, minTimeoutMs: 1, maxTimeoutMs: 1 },
        },
      );
      const ctx = { signal: new AbortController().signal, log: silentLogger };
      const ref = parseRef('vault:database/creds/app');
      await p.fetch(ref, ctx); // lease1, runs out after 60 s
      now += 61_000;
      await p.fetch(ref, ctx); // lease2
      now += 30_000;
      await p.fetch(ref, ctx); // lease3 (lease2 still has 30 s)
      await p.close(ctx);
      expect(revoked.sort()).toEqual(['database/creds/app/lease2', 'database/creds/app/lease3']);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
