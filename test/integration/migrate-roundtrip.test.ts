import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { CANARY, runCli, spawnCli, waitFor } from '../helpers/cli.ts';
import { tempDir } from '../helpers/fixtures.ts';
import { K8sApiEmulator } from './providers/k8s-api-emulator.ts';

/**
 * The migration path end to end, with the real CLI bundle: `sidekey migrate` → `sidekey inject` →
 * the app containers have no secret env var left and have `VAR_FILE`; `sidekey agent --once` with the
 * injected SIDEKEY_SPEC, against the Kubernetes API emulator, writes the right values; the long-running
 * agent picks up a Secret change through the watch (refresh is 5m, so only the watch can explain it).
 */

const FIXTURE = path.resolve('test/fixtures/migrate/roundtrip.yaml');
const NS = 'orders';
const TOKEN = 'orders-sa-token';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}
interface Container {
  name: string;
  command?: string[];
  env?: EnvVar[];
  envFrom?: Array<{ secretRef?: unknown }>;
}

describe('migrate → inject → agent (API emulator)', () => {
  const api = new K8sApiEmulator();
  let server = '';
  let dir = '';
  let injected: { initContainers: Container[]; containers: Container[] };

  beforeAll(async () => {
    api.tokens.set(TOKEN, new Set(['orders-db', 'orders-env', 'orders-queue']));
    server = await api.listen();
    api.put(NS, 'orders-db', { password: `db-${CANARY}`, username: 'orders' });
    api.put(NS, 'orders-env', { PAYMENT_API_KEY: `pay-${CANARY}` });
    api.put(NS, 'orders-queue', { token: `queue-${CANARY}` });
    dir = tempDir({ token: TOKEN });
  });
  afterAll(async () => {
    await api.close();
  });

  it('migrate writes annotations, removes the env secrets and prints the exact RBAC', async () => {
    const out = path.join(dir, 'migrated.yaml');
    const rbac = path.join(dir, 'rbac.yaml');
    const r = await runCli(['migrate', '-f', FIXTURE, '--output-file', out, '--rbac-out', rbac]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('migrate: 3 env var(s) moved');
    const migrated = readFileSync(out, 'utf8');
    expect(migrated).toContain('# Orders service before sidekey');
    expect(migrated).toContain('sidekey.io/secret-payment-api-key: k8s:orders-env#PAYMENT_API_KEY');
    expect(migrated).not.toContain('secretKeyRef');
    const [role] = parseAllDocuments(readFileSync(rbac, 'utf8')).map((d) => d.toJS());
    expect(role.rules[0].resourceNames).toEqual(['orders-db', 'orders-env', 'orders-queue']);
    expect(role.metadata.namespace).toBe(NS);
  });

  it('inject gives the app containers *_FILE vars and no secret env var', async () => {
    const r = await runCli(['inject', '-f', path.join(dir, 'migrated.yaml'), '--kube-version', '1.28']);
    expect(r.code, r.stderr).toBe(0);
    const deployment = parseAllDocuments(r.stdout)
      .map((d) => d.toJS())
      .find((o) => o?.kind === 'Deployment');
    injected = deployment.spec.template.spec;
    const apps = injected.containers.filter((c) => !c.name.startsWith('sidekey'));
    expect(apps.map((c) => c.name)).toEqual(['orders', 'worker']);
    const secretVars = ['DB_PASSWORD', 'PAYMENT_API_KEY', 'QUEUE_TOKEN'];
    for (const c of apps) {
      const names = (c.env ?? []).map((e) => e.name);
      for (const v of secretVars) {
        expect(names, c.name).not.toContain(v);
        expect(names, c.name).toContain(`${v}_FILE`);
      }
      expect(JSON.stringify(c.env ?? [])).not.toContain('secretKeyRef');
      expect((c.envFrom ?? []).some((e) => e.secretRef)).toBe(false);
    }
    expect(apps[0]?.env?.find((e) => e.name === 'DB_USER')?.value).toBe('orders');
  });

  function agentSpec(outDir: string): string {
    const agent = [...injected.initContainers, ...injected.containers].find((c) =>
      c.env?.some((e) => e.name === 'SIDEKEY_SPEC'),
    );
    const spec = JSON.parse(agent!.env!.find((e) => e.name === 'SIDEKEY_SPEC')!.value!);
    expect(spec.backends.k8s.namespace).toBe(NS);
    // The pod's paths, pointed at this machine: the API emulator instead of the cluster's.
    spec.output.dir = outDir;
    spec.backends.k8s = { namespace: NS, server, tokenFile: path.join(dir, 'token') };
    return JSON.stringify(spec);
  }

  function filesOf(outDir: string): Record<string, string> {
    const apps = injected.containers.filter((c) => !c.name.startsWith('sidekey'));
    const out: Record<string, string> = {};
    for (const e of apps[0]?.env ?? []) {
      if (!e.name.endsWith('_FILE')) continue;
      // VAR_FILE=/run/sidekey/<file>: read the same relative file from the local output dir.
      out[e.name] = readFileSync(path.join(outDir, path.posix.relative('/run/sidekey', e.value!)), 'utf8');
    }
    return out;
  }

  it('agent --once with the injected spec writes the right values from the Secrets', async () => {
    const outDir = path.join(dir, 'once');
    const r = await runCli(['agent', '--once'], { env: { SIDEKEY_SPEC: agentSpec(outDir) } });
    expect(r.code, r.stderr).toBe(0);
    expect(filesOf(outDir)).toEqual({
      DB_PASSWORD_FILE: `db-${CANARY}`,
      PAYMENT_API_KEY_FILE: `pay-${CANARY}`,
      QUEUE_TOKEN_FILE: `queue-${CANARY}`,
    });
  });

  it('the long-running agent gets a Secret change through the watch', async () => {
    const outDir = path.join(dir, 'run');
    const agent = spawnCli(['agent'], { env: { SIDEKEY_SPEC: agentSpec(outDir) } });
    try {
      await waitFor(() => existsSync(path.join(outDir, '..data')), 20_000);
      await waitFor(() => api.openWatches >= 3, 10_000);
      api.put(NS, 'orders-db', { password: `db2-${CANARY}`, username: 'orders' });
      await waitFor(() => filesOf(outDir).DB_PASSWORD_FILE === `db2-${CANARY}`, 10_000);
      expect(filesOf(outDir).QUEUE_TOKEN_FILE).toBe(`queue-${CANARY}`);
    } finally {
      const r = await agent.stop('SIGTERM');
      expect(`${r.stdout}${r.stderr}`).not.toContain(CANARY);
    }
  });
});
