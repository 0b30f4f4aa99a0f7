import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ProviderContext } from '../../../src/providers/types.ts';
import { CANARY } from '../../helpers/cli.ts';
import { type OpenBao, startOpenBao } from '../servers/openbao.ts';
import { type Postgres, startPostgres } from '../servers/postgres.ts';

/** The policy every test login gets: reads under app/, dynamic db creds, lease renew/revoke. */
export const APP_POLICY = `
path "secret/data/app/*" { capabilities = ["read"] }
path "secret/metadata/app/*" { capabilities = ["read"] }
path "kv1/app/*" { capabilities = ["read"] }
path "database/creds/app" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
`;

/** Dynamic database credentials: short TTLs so renewal and re-issue happen within a test. */
export const DB_DEFAULT_TTL_S = 6;
export const DB_MAX_TTL_S = 15;

export interface VaultWorld {
  bao: OpenBao;
  pg: Postgres;
  dir: string;
  roleIdFile: string;
  secretIdFile: string;
  jwtFile: string;
  badJwtFile: string;
  rootTokenFile: string;
  /** Sign a JWT with the key OpenBao's auth/jwt trusts. */
  signJwt(claims: Record<string, unknown>, key?: KeyObject): string;
  stop(): Promise<void>;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

export function jwtWith(claims: Record<string, unknown>, key: KeyObject): string {
  const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'sidekey-test' }));
  const body = b64url(JSON.stringify(claims));
  const sig = sign('sha256', Buffer.from(`${head}.${body}`), key);
  return `${head}.${body}.${b64url(sig)}`;
}

/**
 * A real OpenBao (dev mode) configured like a small production setup: KV v2 at secret/, KV v1 at
 * kv1/, approle and jwt auth with the app policy, and the database secrets engine on a real
 * PostgreSQL with short lease TTLs.
 */
export async function startVaultWorld(): Promise<VaultWorld> {
  const [bao, pg] = await Promise.all([startOpenBao({ devRootToken: 'sidekey-root' }), startPostgres()]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-vault-it-'));
  const api = bao.api;

  // KV v2 (dev mode's secret/): two versions of app/db.
  await api('POST', 'secret/data/app/db', { data: { username: 'app', password: 'old-password' } });
  await api('POST', 'secret/data/app/db', { data: { username: 'app', password: CANARY } });
  await api('POST', 'secret/data/other/x', { data: { password: 'not-for-app' } });
  // KV v1 at kv1/.
  await api('POST', 'sys/mounts/kv1', { type: 'kv', options: { version: '1' } });
  await api('POST', 'kv1/app/db', { username: 'app1', password: CANARY, nested: { port: 5432 } });

  await api('PUT', 'sys/policies/acl/app-read', { policy: APP_POLICY });

  // approle
  await api('POST', 'sys/auth/approle', { type: 'approle' });
  await api('POST', 'auth/approle/role/app', {
    token_policies: ['app-read'],
    token_ttl: '1h',
    token_max_ttl: '4h',
  });
  const roleId = (await api('GET', 'auth/approle/role/app/role-id')).data.role_id as string;
  const secretId = (await api('POST', 'auth/approle/role/app/secret-id', {})).data.secret_id as string;
  const roleIdFile = path.join(dir, 'role-id');
  const secretIdFile = path.join(dir, 'secret-id');
  writeFileSync(roleIdFile, `${roleId}\n`);
  writeFileSync(secretIdFile, `${secretId}\n`);

  // jwt: OpenBao validates tokens against the public key the test generated.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await api('POST', 'sys/auth/jwt', { type: 'jwt' });
  await api('POST', 'auth/jwt/config', {
    jwt_validation_pubkeys: [publicKey.export({ type: 'spki', format: 'pem' }).toString()],
    bound_issuer: 'https://issuer.sidekey.test',
  });
  await api('POST', 'auth/jwt/role/app', {
    role_type: 'jwt',
    user_claim: 'sub',
    bound_audiences: ['sidekey'],
    token_policies: ['app-read'],
    token_ttl: '1h',
  });
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: 'https://issuer.sidekey.test',
    sub: 'system:serviceaccount:default:app',
    aud: 'sidekey',
    iat: now,
    nbf: now - 5,
    exp: now + 3600,
  };
  const jwtFile = path.join(dir, 'jwt');
  const badJwtFile = path.join(dir, 'bad-jwt');
  writeFileSync(jwtFile, jwtWith(claims, privateKey));
  writeFileSync(badJwtFile, jwtWith(claims, other.privateKey));

  const rootTokenFile = path.join(dir, 'root-token');
  writeFileSync(rootTokenFile, bao.rootToken);

  // database secrets engine on the real PostgreSQL.
  await api('POST', 'sys/mounts/database', { type: 'database' });
  await api('POST', 'database/config/pg', {
    plugin_name: 'postgresql-database-plugin',
    connection_url: `postgresql://{{username}}:{{password}}@127.0.0.1:${pg.port}/postgres?sslmode=disable`,
    username: pg.superuser,
    password: pg.superPassword,
    allowed_roles: ['app'],
    verify_connection: true,
  });
  await api('POST', 'database/roles/app', {
    db_name: 'pg',
    creation_statements: [
      `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
      `GRANT pg_read_all_data TO "{{name}}";`,
    ],
    default_ttl: `${DB_DEFAULT_TTL_S}s`,
    max_ttl: `${DB_MAX_TTL_S}s`,
  });

  return {
    bao,
    pg,
    dir,
    roleIdFile,
    secretIdFile,
    jwtFile,
    badJwtFile,
    rootTokenFile,
    signJwt: (c, key = privateKey) => jwtWith(c, key),
    async stop() {
      await Promise.allSettled([bao.stop(), pg.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A ProviderContext whose log lines are kept (to assert that no value is ever logged). */
export function testCtx(): ProviderContext & { lines: string[]; abort: AbortController } {
  const abort = new AbortController();
  const lines: string[] = [];
  const rec = (level: string) => (obj: Record<string, unknown>, msg: string) => {
    lines.push(`${level} ${msg} ${JSON.stringify(obj)}`);
  };
  return {
    signal: abort.signal,
    log: { debug: rec('debug'), info: rec('info'), warn: rec('warn') },
    lines,
    abort,
  };
}
