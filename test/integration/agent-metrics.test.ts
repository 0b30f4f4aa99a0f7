import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { CANARY, type CliProcess, recordOutput, runCli, spawnCli, waitFor } from '../helpers/cli.ts';
import { freePort } from './servers/common.ts';
import { type OpenBao, startOpenBao } from './servers/openbao.ts';

// The real agent process (`node bin/sidekey.js agent`) with its metrics listener on, against a real
// OpenBao: a Prometheus scrape of /metrics sees the per-secret gauges move after a rotation (a KV
// write) and the failure counters rise during an outage (OpenBao sealed); `sidekey status` reads the
// same agent's directory. Nothing either prints may contain the secret value.

let bao: OpenBao;
let dir: string;
let port: number;
let agent: CliProcess | undefined;

beforeAll(async () => {
  bao = await startOpenBao();
  await bao.api('POST', 'secret/data/app/db', { data: { username: 'app', password: CANARY } });
  await bao.api('POST', 'secret/data/app/api', { data: { key: `k1-${CANARY}` } });
  dir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-agent-metrics-'));
  writeFileSync(path.join(dir, 'vault-token'), bao.rootToken);
  port = await freePort();
  writeFileSync(
    path.join(dir, 'sidekey.yaml'),
    `apiVersion: sidekey.io/v1
kind: SecretSpec
output:
  dir: ./out
refresh: 1s
jitter: 0
backoff: { initial: 200ms, max: 1s }
maxStale: { after: 4s, action: keep }
agent:
  metrics: { port: ${port} }
backends:
  vault:
    addr: ${bao.addr}
    authMethod: token
    tokenFile: ./vault-token
secrets:
  db-password:
    ref: vault:secret/data/app/db#password
  api-key:
    ref: vault:secret/data/app/api#key
`,
  );
}, 120_000);

afterAll(async () => {
  await agent?.stop('SIGKILL');
  await bao?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** GET one of the listener's paths; the body is recorded for the tier's canary scan. */
async function get(p: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`);
  const text = await res.text();
  recordOutput(`GET ${p}`, text);
  return { status: res.status, text };
}

/** One sample of a scrape, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const scrape = async () => (await get('/metrics')).text;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the agent listener against a real OpenBao', () => {
  it('serves /metrics, /healthz and /readyz on loopback; gauges move after a rotation', async () => {
    agent = spawnCli(['agent', '-c', 'sidekey.yaml'], { cwd: dir, timeoutMs: 120_000 });
    await agent.waitForOutput('metrics listening', 20_000);
    await agent.waitForOutput('ready: first complete write done', 20_000);
    // Loopback unless the spec says otherwise.
    expect(agent.stderr()).toMatch(new RegExp(`"address":"127\\.0\\.0\\.1","port":${port}`));
    expect(await get('/healthz')).toEqual({ status: 200, text: 'ok\n' });
    expect(await get('/readyz')).toEqual({ status: 200, text: 'ready\n' });
    // pino's level as a string.
    expect(agent.stderr()).toContain('"level":"info"');

    let m = await scrape();
    expect(sample(m, 'sidekey_agent_ready')).toBe(1);
    expect(sample(m, 'sidekey_backend_logins_total{backend="vault"}')).toBe(1);
    expect(sample(m, 'sidekey_backend_calls_total{backend="vault",op="fetch"}')).toBeGreaterThanOrEqual(2);
    expect(m).toMatch(/^sidekey_backend_call_duration_seconds_count\{backend="vault",op="fetch"\} [1-9]/m);
    expect(sample(m, 'sidekey_secret_stale{secret="db-password"}')).toBe(0);
    expect(m).toMatch(/^process_resident_memory_bytes \d/m);

    // Refreshes every second with the same value: the refresh age stays low, the version ages.
    await sleep(2500);
    m = await scrape();
    const versionAgeBefore = sample(m, 'sidekey_secret_version_age_seconds{secret="db-password"}')!;
    const refreshesBefore = sample(m, 'sidekey_secret_refreshes_total{secret="db-password"}')!;
    expect(versionAgeBefore).toBeGreaterThanOrEqual(2);
    expect(sample(m, 'sidekey_secret_refresh_age_seconds{secret="db-password"}')).toBeLessThan(2);
    expect(refreshesBefore).toBeGreaterThanOrEqual(2);

    // Rotation: a new KV version; the file follows and the version age starts again.
    await bao.api('POST', 'secret/data/app/db', { data: { username: 'app', password: `${CANARY}-v2` } });
    await waitFor(
      () => readFileSync(path.join(dir, 'out', 'db-password'), 'utf8') === `${CANARY}-v2`,
      10_000,
      50,
    );
    m = await scrape();
    expect(sample(m, 'sidekey_secret_version_age_seconds{secret="db-password"}')).toBeLessThan(
      versionAgeBefore,
    );
    expect(sample(m, 'sidekey_secret_refreshes_total{secret="db-password"}')).toBeGreaterThan(
      refreshesBefore,
    );
    // The other secret did not change: its version keeps ageing.
    expect(sample(m, 'sidekey_secret_version_age_seconds{secret="api-key"}')).toBeGreaterThanOrEqual(
      versionAgeBefore,
    );
    expect(m).not.toContain(CANARY);
  }, 60_000);

  it("sidekey status reads the running agent's directory (table, json, yaml), without values", async () => {
    const table = await runCli(['status', '--dir', 'out'], { cwd: dir });
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toMatch(/out: ready, 2 secret\(s\), status written \d+s ago$/);
    expect(lines[1]).toMatch(/^SECRET\s+FILE\s+VERSION\s+AGE\s+LAST ERROR$/);
    expect(table.stdout).toMatch(/^db-password\s+db-password\s+kv2:2\s+\d+s\s+-$/m);
    expect(table.stdout).toMatch(/^api-key\s+api-key\s+kv2:1\s+\d+s\s+-$/m);
    // The spec next to it gives the directory too.
    const viaSpec = await runCli(['status', '-c', 'sidekey.yaml', '-o', 'json'], { cwd: dir });
    expect(viaSpec.code, viaSpec.stderr).toBe(0);
    const doc = JSON.parse(viaSpec.stdout);
    expect(doc.secrets['db-password']).toMatchObject({ file: 'db-password', version: 'kv2:2' });
    const yaml = await runCli(['status', '--dir', 'out', '-o', 'yaml'], { cwd: dir });
    expect(yaml.stdout).toMatch(/^apiVersion: sidekey\.io\/v1$/m);
    for (const r of [table, viaSpec, yaml]) expect(r.stdout + r.stderr).not.toContain(CANARY);
  }, 30_000);

  it('an outage (OpenBao sealed): failure counters rise by code, then stale, and /readyz says which', async () => {
    const before = await scrape();
    expect(
      sample(
        before,
        'sidekey_secret_refresh_failures_total{secret="db-password",code="SK_ERR_BACKEND_UNAVAILABLE"}',
      ),
    ).toBeUndefined();
    await bao.api('PUT', 'sys/seal');
    const failures = await waitFor(
      async () => {
        const m = await scrape();
        const n = sample(
          m,
          'sidekey_secret_refresh_failures_total{secret="db-password",code="SK_ERR_BACKEND_UNAVAILABLE"}',
        );
        return n !== undefined && n >= 2 ? m : undefined;
      },
      30_000,
      200,
    );
    expect(failures).toMatch(
      /^sidekey_backend_errors_total\{backend="vault",op="fetch",code="SK_ERR_BACKEND_UNAVAILABLE"\} [1-9]/m,
    );
    expect(sample(failures, 'sidekey_secret_failing{secret="db-password"}')).toBe(1);
    // Past maxStale (4 s): both secrets stale, not ready; the last good files stay. (Each secret
    // fails on its own schedule — fetches are not serialised — so one may go stale a moment first.)
    const notReady = await waitFor(
      async () => {
        const r = await get('/readyz');
        return r.status === 503 && r.text.includes('db-password') && r.text.includes('api-key')
          ? r
          : undefined;
      },
      30_000,
      200,
    );
    expect(notReady.text).toMatch(
      /^not ready: past maxStale: (db-password, api-key|api-key, db-password)\n$/,
    );
    const m = await scrape();
    expect(sample(m, 'sidekey_secret_stale{secret="db-password"}')).toBe(1);
    expect(sample(m, 'sidekey_agent_ready')).toBe(0);
    expect(sample(m, 'sidekey_secret_refresh_age_seconds{secret="db-password"}')).toBeGreaterThanOrEqual(4);
    expect(readFileSync(path.join(dir, 'out', 'db-password'), 'utf8')).toBe(`${CANARY}-v2`);
    expect(m).not.toContain(CANARY);

    // The status file follows once the rotation in flight (OpenBao retries) has ended.
    const st = await waitFor(
      async () => {
        const r = await runCli(['status', '--dir', 'out'], { cwd: dir });
        return r.stdout.includes(', stale') ? r : undefined;
      },
      30_000,
      500,
    );
    expect(st.code).toBe(0);
    // (a WAITING column shows while a retry is in flight)
    expect(st.stdout).toMatch(
      /^db-password\s+db-password\s+kv2:2\s+\d+s\s+(?:(?:\d+[smhd])+\s+|-\s+)?SK_ERR_BACKEND_UNAVAILABLE, stale$/m,
    );
    expect(st.stdout + st.stderr).not.toContain(CANARY);

    const r = await agent!.stop('SIGTERM', 20_000);
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(CANARY);
    // The listener is gone with the agent.
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  }, 90_000);
});

describe('the agent listener, failing to bind', () => {
  it('a port in use ends the agent with one SK_ERR_LISTEN line (exit 1)', async () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'sidekey-agent-listen-'));
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const busy = (taken.address() as net.AddressInfo).port;
    try {
      writeFileSync(path.join(d, 'a.yaml'), `password: ${CANARY}\n`);
      writeFileSync(
        path.join(d, 'sidekey.yaml'),
        `apiVersion: sidekey.io/v1\nkind: SecretSpec\noutput: { dir: ./out }\nagent:\n  metrics: { port: ${busy} }\nsecrets:\n  a: { ref: "file:a.yaml#password" }\n`,
      );
      const r = await runCli(['agent', '-c', 'sidekey.yaml'], { cwd: d, timeoutMs: 30_000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `^SK_ERR_LISTEN: agent\\.metrics: cannot listen on 127\\.0\\.0\\.1:${busy} \\(EADDRINUSE\\)`,
          'm',
        ),
      );
      expect(r.stdout + r.stderr).not.toContain(CANARY);
    } finally {
      taken.close();
      rmSync(d, { recursive: true, force: true });
    }
  }, 40_000);
});

describe('the injected native sidecar with the listener on, probed as the kubelet would', () => {
  it('sidekey inject gives an httpGet /readyz startup probe on the named port, which passes once the files are written', async () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'sidekey-agent-probe-'));
    const free = await freePort();
    try {
      writeFileSync(path.join(d, 'db.yaml'), `password: ${CANARY}\n`);
      writeFileSync(
        path.join(d, 'pod.yaml'),
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: 'app',
            annotations: {
              'sidekey.io/inject': 'true',
              'sidekey.io/secret-db': `file:${path.join(d, 'db.yaml')}#password`,
              'sidekey.io/metrics-port': String(free),
            },
          },
          spec: { containers: [{ name: 'app', image: 'shop/app:1' }] },
        }),
      );
      const inj = await runCli(['inject', '-f', 'pod.yaml', '--kube-version', '1.33'], { cwd: d });
      expect(inj.code, inj.stderr).toBe(0);
      // biome-ignore lint/suspicious/noExplicitAny: reading fields of the injected pod
      const pod = YAML.parse(inj.stdout) as any;
      const c = pod.spec.initContainers[0];
      expect(c).toMatchObject({ name: 'sidekey-agent', restartPolicy: 'Always' });
      expect(c.startupProbe.exec).toBeUndefined();
      expect(pod.metadata.annotations['prometheus.io/port']).toBe(String(free));

      // The kubelet's view: the probe's named port resolves through the container's ports.
      const named = c.ports.find((p: { name: string }) => p.name === c.startupProbe.httpGet.port);
      expect(named).toEqual({ name: 'sidekey-metrics', containerPort: free, protocol: 'TCP' });
      const spec = JSON.parse(c.env.find((e: { name: string }) => e.name === 'SIDEKEY_SPEC').value);
      expect(spec.agent.metrics).toEqual({ port: free, address: '0.0.0.0' });
      spec.output.dir = path.join(d, 'run'); // the tmpfs volume's mount path, here
      const run = spawnCli(c.command.slice(1), {
        cwd: d,
        env: { SIDEKEY_SPEC: JSON.stringify(spec) },
        timeoutMs: 60_000,
      });
      try {
        const probe = async () => {
          try {
            const res = await fetch(`http://127.0.0.1:${named.containerPort}${c.startupProbe.httpGet.path}`);
            return res.status;
          } catch {
            return 0; // connection refused: a failed probe
          }
        };
        const status = await waitFor(async () => ((await probe()) === 200 ? 200 : undefined), 30_000, 50);
        expect(status).toBe(200);
        expect(readFileSync(path.join(d, 'run', 'db'), 'utf8')).toBe(CANARY);
      } finally {
        const r = await run.stop('SIGTERM', 20_000);
        expect(r.code).toBe(0);
        expect(r.stdout + r.stderr).not.toContain(CANARY);
      }
      expect(inj.stdout + inj.stderr).not.toContain(CANARY);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('lease metrics with dynamic database credentials (OpenBao + PostgreSQL)', () => {
  it('lease seconds remaining, renewals timed as op="renew", one approle login', async () => {
    const { startVaultWorld, DB_DEFAULT_TTL_S } = await import('./providers/vault-fixture.ts');
    const world = await startVaultWorld();
    const d = mkdtempSync(path.join(os.tmpdir(), 'sidekey-agent-lease-'));
    const p = await freePort();
    let run: CliProcess | undefined;
    try {
      writeFileSync(
        path.join(d, 'sidekey.yaml'),
        `apiVersion: sidekey.io/v1
kind: SecretSpec
output: { dir: ./out }
agent:
  metrics: { port: ${p} }
backends:
  vault:
    addr: ${world.bao.addr}
    authMethod: approle
    roleIdFile: ${world.roleIdFile}
    secretIdFile: ${world.secretIdFile}
secrets:
  db-user:
    ref: vault:database/creds/app#username
  db-password:
    ref: vault:database/creds/app#password
`,
      );
      run = spawnCli(['agent', '-c', 'sidekey.yaml'], { cwd: d, timeoutMs: 90_000 });
      await run.waitForOutput('metrics listening', 30_000);
      const scrapeP = async () => {
        const text = await (await fetch(`http://127.0.0.1:${p}/metrics`)).text();
        recordOutput('GET /metrics (lease)', text);
        return text;
      };
      let m = await scrapeP();
      for (const s of ['db-user', 'db-password']) {
        const left = sample(m, `sidekey_secret_lease_remaining_seconds{secret="${s}"}`)!;
        expect(left).toBeGreaterThan(0);
        expect(left).toBeLessThanOrEqual(DB_DEFAULT_TTL_S);
      }
      expect(sample(m, 'sidekey_backend_logins_total{backend="vault"}')).toBe(1);
      // Renewed at ~2/3 of the TTL: one renewal per lease (the two secrets share it), timed.
      m = await waitFor(
        async () => {
          const t = await scrapeP();
          return (sample(t, 'sidekey_backend_calls_total{backend="vault",op="renew"}') ?? 0) >= 1
            ? t
            : undefined;
        },
        20_000,
        200,
      );
      expect(m).toMatch(/^sidekey_backend_call_duration_seconds_count\{backend="vault",op="renew"\} [1-9]/m);
      expect(sample(m, 'sidekey_backend_logins_total{backend="vault"}')).toBe(1);
      expect(m).not.toContain(CANARY);
      const st = await runCli(['status', '--dir', 'out'], { cwd: d });
      expect(st.stdout).toMatch(/^SECRET\s+FILE\s+VERSION\s+AGE\s+LEASE\s+LAST ERROR$/m);
      expect(st.stdout).toMatch(/^db-user\s+db-user\s+\S+\s+\d+s\s+(\d+s|expired)\s+-$/m);
      const r = await run.stop('SIGTERM', 20_000);
      expect(r.code).toBe(0);
    } finally {
      await run?.stop('SIGKILL');
      await world.stop();
      rmSync(d, { recursive: true, force: true });
    }
  }, 120_000);
});
