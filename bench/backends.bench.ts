import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Engine } from '../src/engine.ts';
import { silentLogger } from '../src/log.ts';
import { AWS_BATCH_MAX, AwsProvider, awsProvider } from '../src/providers/aws/index.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import type { Lease, Provider } from '../src/providers/types.ts';
import { type VaultProvider, vaultProvider } from '../src/providers/vault/index.ts';
import { resolveSpec } from '../src/spec.ts';
import {
  DB_DEFAULT_TTL_S,
  DB_MAX_TTL_S,
  startVaultWorld,
} from '../test/integration/providers/vault-fixture.ts';
import { startMoto } from '../test/integration/servers/moto.ts';
import { benchRoot, type Row, sleep } from './lib.ts';

/**
 * Backend calls per refresh, against real servers on loopback:
 * - AWS Secrets Manager (moto_server): requests per refresh of N secrets through the real Engine,
 *   counted by the provider (every attempt on the wire) and by moto's own request log; target
 *   ceil(N/20) (BatchGetSecretValue takes 20 ids).
 * - Vault/OpenBao dynamic database credentials (real PostgreSQL): over one full max TTL, how many
 *   credential sets were issued before 2/3 of the previous one's TTL (target 0), and when the
 *   renewals happened.
 */
export async function run(): Promise<Row[]> {
  return [...(await awsRows()), ...(await vaultRows())];
}

function spec(dir: string, secrets: Record<string, { ref: string }>, backends: Record<string, unknown>) {
  return resolveSpec({
    apiVersion: 'sidekey.io/v1',
    kind: 'SecretSpec',
    output: { dir },
    refresh: '1h',
    backends,
    secrets,
  });
}

async function awsRows(): Promise<Row[]> {
  const moto = await startMoto();
  const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
  const admin = new SecretsManagerClient({ endpoint: moto.endpoint, region: 'us-east-1', credentials });
  const rows: Row[] = [];
  try {
    const maxN = 100;
    for (let i = 0; i < maxN; i++) {
      await admin.send(
        new CreateSecretCommand({ Name: `bench/s${i}`, SecretString: JSON.stringify({ v: i }) }),
      );
    }
    for (const n of [1, 5, 20, 45, 100]) {
      const dir = mkdtempSync(path.join(benchRoot(), 'sidekey-bench-aws-'));
      let provider: AwsProvider | undefined;
      const registry = new ProviderRegistry().register({
        ...awsProvider,
        create(b) {
          provider = new AwsProvider(b.aws ?? {}, { clientConfig: { credentials } });
          return provider;
        },
      });
      const secrets = Object.fromEntries(
        Array.from({ length: n }, (_, i) => [`s${i}`, { ref: `aws:bench/s${i}#v` }]),
      );
      const engine = new Engine(
        spec(dir, secrets, { aws: { region: 'us-east-1', endpoint: moto.endpoint } }),
        { registry, log: silentLogger },
      );
      await engine.syncOnce(); // first write
      const before = provider!.stats.requests;
      const posts0 = motoPosts(moto.requestLog());
      const t0 = performance.now();
      await engine.syncOnce(); // one refresh of every secret
      const ms = performance.now() - t0;
      await sleep(100); // moto logs after answering
      const calls = provider!.stats.requests - before;
      const seen = motoPosts(moto.requestLog()) - posts0;
      await engine.stop();
      rmSync(dir, { recursive: true, force: true });
      rows.push({
        section: `aws (moto_server, ${n} secrets)`,
        metric: 'calls per refresh',
        value: calls,
        unit: 'calls',
        max: Math.ceil(n / AWS_BATCH_MAX),
        note: `moto saw ${seen} request(s); refresh took ${ms.toFixed(0)} ms`,
      });
    }
  } finally {
    admin.destroy();
    await moto.stop();
  }
  return rows;
}

async function vaultRows(): Promise<Row[]> {
  const w = await startVaultWorld();
  const dir = mkdtempSync(path.join(benchRoot(), 'sidekey-bench-vault-'));
  const issues: Array<{ at: number; lease: Lease }> = [];
  const renewals: number[] = [];
  let inner: VaultProvider | undefined;
  try {
    const registry = new ProviderRegistry().register({
      ...vaultProvider,
      create(b) {
        inner = vaultProvider.create(b) as VaultProvider;
        const p = inner;
        const wrapped: Provider = {
          name: p.name,
          async fetch(ref, ctx) {
            const r = await p.fetch(ref, ctx);
            if (r.lease && !issues.some((i) => i.lease.id === r.lease!.id)) {
              issues.push({ at: Date.now(), lease: r.lease });
            }
            return r;
          },
          async renew(lease, ctx) {
            const l = await p.renew!(lease, ctx);
            renewals.push(Date.now());
            return l;
          },
          close: (ctx) => p.close!(ctx),
        };
        return wrapped;
      },
    });
    const engine = new Engine(
      spec(
        dir,
        {
          'db-user': { ref: 'vault:database/creds/app#username' },
          'db-password': { ref: 'vault:database/creds/app#password' },
        },
        {
          vault: {
            addr: w.bao.addr,
            authMethod: 'approle',
            roleIdFile: w.roleIdFile,
            secretIdFile: w.secretIdFile,
          },
        },
      ),
      { registry, log: silentLogger },
    );
    await engine.start();
    // One full max TTL of the first lease and a margin: renewals, one capped renewal, one re-issue.
    await sleep((DB_MAX_TTL_S + 3) * 1000);
    await engine.stop();
    const ttl = DB_DEFAULT_TTL_S * 1000;
    let early = 0;
    for (let i = 1; i < issues.length; i++) {
      if (issues[i]!.at - issues[i - 1]!.at < (ttl * 2) / 3) early++;
    }
    const t0 = issues[0]!.at;
    const firstRenew = renewals.length > 0 ? ((renewals[0]! - t0) / ttl) * 100 : Number.NaN;
    const renewedAt = renewals.map((r) => ((r - t0) / 1000).toFixed(1)).join(', ');
    return [
      {
        section: `vault dynamic db creds (ttl ${DB_DEFAULT_TTL_S}s, max ${DB_MAX_TTL_S}s)`,
        metric: 're-issued before 2/3 TTL',
        value: early,
        unit: 'times',
        max: 0,
        note: `${issues.length} set(s) issued in ${DB_MAX_TTL_S + 3}s; re-issue at ${issues[1] ? ((issues[1].at - t0) / 1000).toFixed(1) : '-'}s`,
      },
      {
        section: `vault dynamic db creds (ttl ${DB_DEFAULT_TTL_S}s, max ${DB_MAX_TTL_S}s)`,
        metric: 'first renewal at',
        value: firstRenew,
        unit: '% of TTL',
        note: `engine renewals at ${renewedAt} s; ${inner?.stats.leaseRenewals ?? 0} renew call(s) reached vault; ${inner?.stats.logins ?? 0} login(s)`,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await w.stop();
  }
}

function motoPosts(log: string): number {
  return (log.match(/"POST \/ HTTP\/1\.1" /g) ?? []).length;
}
