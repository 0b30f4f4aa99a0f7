import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenBao, startOpenBao } from '../integration/servers/openbao.ts';
import { type Postgres, startPostgres } from '../integration/servers/postgres.ts';
import { createNamespace, kube, pod, uniqueName } from './harness/kube.js';
import { type AgentRun, runAgent } from './harness/pod-runner.js';
import { GiveUp, waitFor } from './harness/procs.js';
import { installSidekey, type SidekeyInstall } from './harness/sidekey.js';

const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';

/** `psql` from the Debian PostgreSQL package (scripts/tools/integration.d/20-postgres.sh). */
function psql(): string {
  const root = '/usr/lib/postgresql';
  for (const v of readdirSync(root).sort((a, b) => Number(b) - Number(a))) {
    const p = join(root, v, 'bin', 'psql');
    if (existsSync(p)) return p;
  }
  throw new Error(`psql not found under ${root}`);
}
const AUDIENCE = 'openbao';

// OpenBao's kubernetes auth method configured against this API server: OpenBao checks the pod's
// token with a real TokenReview (made with its own reviewer service account), then the agent reads
// a KV v2 secret and dynamic PostgreSQL credentials.
describe('OpenBao kubernetes auth from an injected pod', () => {
  const k = kube();
  let sk: SidekeyInstall;
  let bao: OpenBao;
  let pg: Postgres;
  let ns: string;
  let run: AgentRun | undefined;

  beforeAll(async () => {
    [bao, pg] = await Promise.all([startOpenBao(), startPostgres()]);
    sk = await installSidekey(k, { release: 'sk-bao' });
    ns = await createNamespace(k, uniqueName('bao-app'));

    // OpenBao's token reviewer: a service account allowed to create TokenReviews.
    const reviewerNs = await createNamespace(k, uniqueName('openbao'));
    await k.core.createNamespacedServiceAccount({
      namespace: reviewerNs,
      body: { metadata: { name: 'reviewer' } },
    });
    await k.rbac.createClusterRoleBinding({
      body: {
        metadata: { name: `${reviewerNs}-auth-delegator` },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'system:auth-delegator',
        },
        subjects: [{ kind: 'ServiceAccount', name: 'reviewer', namespace: reviewerNs }],
      },
    });
    const reviewer = await k.core.createNamespacedServiceAccountToken({
      name: 'reviewer',
      namespace: reviewerNs,
      body: { spec: { audiences: [], expirationSeconds: 7200 } },
    });

    await bao.api('POST', 'sys/auth/kubernetes', { type: 'kubernetes' });
    await bao.api('POST', 'auth/kubernetes/config', {
      kubernetes_host: k.info.server,
      kubernetes_ca_cert: k.info.caPem,
      token_reviewer_jwt: reviewer.status?.token,
      disable_local_ca_jwt: true,
    });
    await bao.api('PUT', 'sys/policies/acl/app', {
      policy:
        'path "secret/data/app" { capabilities = ["read"] }\npath "database/creds/app" { capabilities = ["read"] }',
    });
    await bao.api('POST', 'auth/kubernetes/role/app', {
      bound_service_account_names: ['default'],
      bound_service_account_namespaces: [ns],
      audience: AUDIENCE,
      token_policies: ['app'],
      token_ttl: '10m',
    });
    await bao.api('POST', 'secret/data/app', { data: { password: CANARY, user: 'app' } });

    await bao.api('POST', 'sys/mounts/database', { type: 'database' });
    await bao.api('POST', 'database/config/pg', {
      plugin_name: 'postgresql-database-plugin',
      connection_url: `postgresql://{{username}}:{{password}}@127.0.0.1:${pg.port}/postgres?sslmode=disable`,
      username: pg.superuser,
      password: pg.superPassword,
      allowed_roles: ['app'],
    });
    await bao.api('POST', 'database/roles/app', {
      db_name: 'pg',
      creation_statements: [
        `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
      ],
      default_ttl: '5m',
      max_ttl: '1h',
    });
  });
  afterAll(async () => {
    await run?.proc.stop();
    await sk?.uninstall();
    await Promise.allSettled([bao?.stop(), pg?.stop()]);
  });

  it('logs in with the pod-bound token (real TokenReview) and writes KV and dynamic database secrets', async () => {
    await k.core.createNamespacedPod({
      namespace: ns,
      body: pod('app', {
        'sidekey.io/inject': 'true',
        'sidekey.io/vault-addr': bao.addr,
        'sidekey.io/vault-role': 'app',
        'sidekey.io/vault-audience': AUDIENCE,
        'sidekey.io/secret-db-password': 'vault:secret/data/app#password',
        'sidekey.io/secret-pg': 'vault:database/creds/app',
        'sidekey.io/format-pg': 'json',
      }),
    });
    const stored = await k.core.readNamespacedPod({ name: 'app', namespace: ns });
    run = await runAgent(k, stored);
    const out = run.local('/run/sidekey');
    const r = run;
    await waitFor(
      'the agent to write both files',
      async () => {
        if (r.proc.ended()) throw new GiveUp(`agent ended (${r.proc.how()}):\n${r.proc.log().slice(-2000)}`);
        return existsSync(join(out, 'db-password')) && existsSync(join(out, 'pg')) ? true : undefined;
      },
      60_000,
    );
    expect(readFileSync(join(out, 'db-password'), 'utf8')).toBe(CANARY);
    const creds = JSON.parse(readFileSync(join(out, 'pg'), 'utf8')) as { username: string; password: string };
    expect(creds.username).toMatch(/^v-/);
    expect(creds.password.length).toBeGreaterThan(10);

    // The login really was the pod's: OpenBao's token metadata comes from the TokenReview answer.
    const accessors = (await bao.api('LIST', 'auth/token/accessors')).data.keys as string[];
    const metas = await Promise.all(
      accessors.map(
        async (a) => (await bao.api('POST', 'auth/token/lookup-accessor', { accessor: a })).data.meta,
      ),
    );
    const podLogin = metas.find((m) => m?.service_account_namespace === ns);
    expect(podLogin).toMatchObject({ service_account_name: 'default', role: 'app' });
    // The dynamic credentials work against the real PostgreSQL...
    const who = execFileSync(
      psql(),
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(pg.port),
        '-U',
        creds.username,
        '-d',
        'postgres',
        '-tAc',
        'select current_user',
      ],
      { env: { ...process.env, PGPASSWORD: creds.password }, encoding: 'utf8' },
    );
    expect(who.trim()).toBe(creds.username);
    // ... under a lease that OpenBao tracks (renewed by the agent, revoked at the end).
    const leases = await bao.api('LIST', 'sys/leases/lookup/database/creds/app/');
    expect(leases.data.keys.length).toBeGreaterThan(0);
    expect(run.proc.log()).not.toContain(CANARY);
    expect(run.proc.log()).not.toContain(creds.password);
  });
});
