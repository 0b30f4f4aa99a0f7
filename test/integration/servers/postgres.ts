import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, type Proc, startProc, waitUntil } from './common.ts';

export interface Postgres {
  readonly host: string;
  readonly port: number;
  readonly superuser: string;
  readonly superPassword: string;
  /** postgres://user:pass@127.0.0.1:port/postgres */
  url(user?: string, password?: string): string;
  stop(): Promise<void>;
}

/** The PostgreSQL server binaries from the Debian package (scripts/tools/integration.d/20-postgres.sh). */
function pgBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const d = path.join(root, v, 'bin');
    if (existsSync(path.join(d, 'initdb')) && existsSync(path.join(d, 'postgres'))) return d;
  }
  throw new Error(
    'PostgreSQL server binaries not found under /usr/lib/postgresql: run `bash scripts/tools/ensure.sh integration` (20-postgres.sh)',
  );
}

/**
 * Start a throwaway PostgreSQL cluster: initdb in a temp dir, listening on 127.0.0.1 at a random
 * port, password (scram) auth over TCP. Root cannot run postgres, so as root it runs as the
 * `postgres` system user through runuser.
 */
export async function startPostgres(): Promise<Postgres> {
  const bin = pgBinDir();
  const asRoot = process.getuid?.() === 0;
  let uid = -1;
  let gid = -1;
  if (asRoot) {
    uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  }
  const base = mkdtempSync(path.join(os.tmpdir(), 'sidekey-pg-'));
  chmodSync(base, 0o700);
  const data = path.join(base, 'data');
  const pwfile = path.join(base, 'pw');
  const superPassword = `pg-${Math.random().toString(36).slice(2)}`;
  writeFileSync(pwfile, `${superPassword}\n`, { mode: 0o600 });
  if (asRoot) {
    chownSync(base, uid, gid);
    chownSync(pwfile, uid, gid);
  }
  const run = (cmd: string, args: string[]) =>
    asRoot ? (['runuser', ['-u', 'postgres', '--', cmd, ...args]] as const) : ([cmd, args] as const);
  const [c1, a1] = run(path.join(bin, 'initdb'), [
    '-D',
    data,
    '-U',
    'postgres',
    `--pwfile=${pwfile}`,
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    '--no-sync',
  ]);
  execFileSync(c1, [...a1], { stdio: 'pipe', cwd: base });
  const port = await freePort();
  const [c2, a2] = run(path.join(bin, 'postgres'), [
    '-D',
    data,
    '-p',
    String(port),
    '-k',
    base,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
  ]);
  const proc: Proc = startProc(c2, [...a2], { cwd: base });
  await waitUntil(
    'postgres',
    async () => {
      const [c3, a3] = run(path.join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)]);
      try {
        execFileSync(c3, [...a3], { stdio: 'pipe' });
        return true;
      } catch {
        return false;
      }
    },
    proc,
    60_000,
  );
  return {
    host: '127.0.0.1',
    port,
    superuser: 'postgres',
    superPassword,
    url(user = 'postgres', password = superPassword) {
      return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
    },
    async stop() {
      // runuser forwards SIGTERM to postgres ("smart" shutdown waits for clients; fast is SIGINT).
      proc.child.kill('SIGINT');
      await proc.stop(10_000);
      rmSync(base, { recursive: true, force: true });
    },
  };
}
