import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CANARY, runCli, spawnCli, waitFor } from '../../helpers/cli.ts';
import { type GcpEmulator, startGcpEmulator } from '../servers/gcp-emulator.ts';

// The real CLI bundle (`node bin/sidekey.js agent`) with gcp: refs from a sidekey.yaml, against the
// wire-level Google Cloud emulator on loopback: the GKE path (metadata server) and the federation
// path (a projected token exchanged at STS, then impersonation).

const GSA = 'agent@sk-emulated.iam.gserviceaccount.com';
let emu: GcpEmulator;
let dir: string;
// keep the process away from any credentials of the machine
const env = {
  GOOGLE_APPLICATION_CREDENTIALS: undefined,
  CLOUDSDK_CONFIG: '/nonexistent',
  GCE_METADATA_HOST: undefined,
};

function specYaml(refresh: string, gcp: string, extra = ''): string {
  return `apiVersion: sidekey.io/v1
kind: SecretSpec
output:
  dir: ./out
refresh: ${refresh}
backoff: { initial: 200ms, max: 1s }
backends:
  gcp:
${gcp}
secrets:
  db-password:
    ref: gcp:db#password
  api-key:
    ref: gcp:projects/${emu.projectId}/secrets/api-key
  keystore.p12:
    ref: gcp:keystore/versions/1
${extra}`;
}

const metadataSettings = () =>
  `    project: ${emu.projectId}\n    endpoint: ${emu.url}\n    metadataHost: ${emu.host}\n`;

beforeAll(async () => {
  emu = await startGcpEmulator({ metadataServiceAccount: GSA });
  emu.grant(`serviceAccount:${GSA}`, '*');
  emu.addVersion('db', JSON.stringify({ username: 'app', password: CANARY }));
  emu.addVersion('api-key', `k1-${CANARY}`);
  emu.addVersion('keystore', Buffer.from([0x30, 0x82, 0xff, 0]));
  dir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-cli-gcp-'));
});
afterAll(async () => {
  await emu?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const out = (d: string, f: string) => readFileSync(path.join(d, 'out', f));

describe('sidekey agent with gcp: refs against the Google Cloud emulator', () => {
  it('agent --once renders every file (GKE metadata path) and exits 0, printing no value', async () => {
    writeFileSync(path.join(dir, 'sidekey.yaml'), specYaml('5m', metadataSettings()));
    const r = await runCli(['agent', '--once', '-c', 'sidekey.yaml'], { cwd: dir, env });
    expect(r.code, r.stderr).toBe(0);
    expect(out(dir, 'db-password').toString()).toBe(CANARY);
    expect(out(dir, 'api-key').toString()).toBe(`k1-${CANARY}`);
    expect(out(dir, 'keystore.p12').equals(Buffer.from([0x30, 0x82, 0xff, 0]))).toBe(true);
    expect(r.stdout + r.stderr).not.toContain(CANARY);
    expect(r.stdout + r.stderr).not.toContain('ya29.');
  });

  it('agent --once with Workload Identity Federation: STS exchange of the token file + impersonation', async () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'sidekey-cli-gcp-fed-'));
    const sub = 'system:serviceaccount:shop:api';
    const sa = 'shop@sk-emulated.iam.gserviceaccount.com';
    writeFileSync(path.join(d, 'token'), emu.mintK8sToken({ sub }));
    emu.allowImpersonation(sa, emu.federatedPrincipal(sub));
    emu.grant(`serviceAccount:${sa}`, '*');
    const settings = [
      `    project: ${emu.projectId}`,
      `    endpoint: ${emu.url}`,
      `    stsEndpoint: ${emu.url}`,
      `    iamCredentialsEndpoint: ${emu.url}`,
      `    audience: "${emu.providerName}"`,
      `    tokenFile: ${path.join(d, 'token')}`,
      `    serviceAccount: ${sa}`,
      '',
    ].join('\n');
    writeFileSync(path.join(d, 'sidekey.yaml'), specYaml('5m', settings));
    const sts = emu.count('sts');
    const r = await runCli(['agent', '--once', '-c', 'sidekey.yaml'], { cwd: d, env });
    expect(r.code, r.stderr).toBe(0);
    expect(out(d, 'db-password').toString()).toBe(CANARY);
    expect(emu.count('sts') - sts).toBe(1); // one exchange for three secrets
    expect(r.stdout + r.stderr).not.toContain(CANARY);
    rmSync(d, { recursive: true, force: true });
  });

  it('agent --once: a disabled latest version is one SK_ERR line naming the ref, and nothing is written', async () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'sidekey-cli-gcp-bad-'));
    emu.addVersion('off', 'v1');
    emu.addVersion('off', `v2-${CANARY}`);
    emu.setState('off', 2, 'DISABLED');
    writeFileSync(
      path.join(d, 'sidekey.yaml'),
      specYaml('5m', metadataSettings(), '  off:\n    ref: gcp:off\n'),
    );
    const r = await runCli(['agent', '--once', '-c', 'sidekey.yaml'], { cwd: d, env });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^SK_ERR_SOURCE_UNREADABLE: .*gcp:off: .*the latest version \(2\) is disabled/);
    expect(existsSync(path.join(d, 'out', 'db-password'))).toBe(false);
    expect(r.stdout + r.stderr).not.toContain(CANARY);
    rmSync(d, { recursive: true, force: true });
  });

  it('a long-running agent picks up a rotation, keeps the last good files through a bad version, then follows again', async () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'sidekey-cli-gcp-rot-'));
    emu.addVersion('rot', `r1-${CANARY}`);
    writeFileSync(
      path.join(d, 'sidekey.yaml'),
      specYaml('1s', metadataSettings(), '  rot:\n    ref: gcp:rot\n'),
    );
    const agent = spawnCli(['agent', '-c', 'sidekey.yaml'], { cwd: d, env });
    try {
      await agent.waitForOutput('ready', 30_000);
      expect(out(d, 'rot').toString()).toBe(`r1-${CANARY}`);
      emu.addVersion('rot', `r2-${CANARY}`);
      await waitFor(() => out(d, 'rot').toString() === `r2-${CANARY}`, 15_000, 100);
      // a new version that is disabled: the agent reports it, the files keep r2
      emu.addVersion('rot', `r3-${CANARY}`);
      emu.setState('rot', 3, 'DISABLED');
      await agent.waitForOutput('SK_ERR_SOURCE_UNREADABLE', 15_000);
      expect(out(d, 'rot').toString()).toBe(`r2-${CANARY}`);
      expect(out(d, 'db-password').toString()).toBe(CANARY);
      // an outage: the files stay
      emu.fault('access', 'unavailable', 12);
      await agent.waitForOutput('SK_ERR_BACKEND_UNAVAILABLE', 20_000);
      expect(out(d, 'rot').toString()).toBe(`r2-${CANARY}`);
      emu.clearFaults();
      emu.addVersion('rot', `r4-${CANARY}`);
      await waitFor(() => out(d, 'rot').toString() === `r4-${CANARY}`, 15_000, 100);
    } finally {
      emu.clearFaults();
      const r = await agent.stop('SIGTERM');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout + r.stderr).not.toContain(CANARY);
      rmSync(d, { recursive: true, force: true });
    }
  });
});
