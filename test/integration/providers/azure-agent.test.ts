import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa } from '../../e2e/harness/pki.ts';
import { CANARY, runCli, spawnCli, waitFor } from '../../helpers/cli.ts';
import { type AzureEmulator, startAzureEmulator } from '../servers/azure-emulator.ts';

// The real CLI bundle (`node bin/sidekey.js agent`) with azure: refs, against the Key Vault / Entra
// emulator on loopback: configured only as the AKS workload-identity webhook configures a pod (the
// AZURE_* environment and the projected token file), trusting the emulator's CA with
// NODE_EXTRA_CA_CERTS. Refs use the vault URL form, which needs no DNS name for the vault.

let emu: AzureEmulator;
let dir: string;
let env: Record<string, string>;
const PROJECTED = 'eyJhbGciOiJSUzI1NiJ9.agent-projected-token.sig';

beforeAll(async () => {
  emu = await startAzureEmulator();
  dir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-azure-agent-'));
  writeFileSync(path.join(dir, 'ca.pem'), emu.ca);
  writeFileSync(path.join(dir, 'azure-identity-token'), PROJECTED);
  emu.trustAssertion(PROJECTED);
  env = {
    NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem'),
    AZURE_CLIENT_ID: emu.clientId,
    AZURE_TENANT_ID: emu.tenantId,
    AZURE_FEDERATED_TOKEN_FILE: path.join(dir, 'azure-identity-token'),
    AZURE_AUTHORITY_HOST: emu.authorityHost,
  };
  emu.setSecret('db', JSON.stringify({ user: 'app', password: CANARY }));
  emu.setSecret('api-key', `k1-${CANARY}`);
  const ca = await createCa('CN=agent-test-ca');
  const leaf = await ca.sign({ subject: 'CN=app.example', dns: ['app.example'], usage: 'server' });
  emu.setSecret('tls', `${leaf.keyPem}${leaf.certPem}${ca.certPem}`, {
    contentType: 'application/x-pem-file',
  });
  // a PKCS#12 certificate secret as Key Vault keeps one (no password): node-forge, lazily loaded in the bundle
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '02';
  cert.validity.notBefore = new Date();
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: 'commonName', value: 'p12.example' }]);
  cert.setIssuer([{ name: 'commonName', value: 'p12.example' }]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  const p12 = forge.pkcs12.toPkcs12Asn1(keys.privateKey, [cert], '', { algorithm: '3des' });
  emu.setSecret('p12', Buffer.from(forge.asn1.toDer(p12).getBytes(), 'binary').toString('base64'), {
    contentType: 'application/x-pkcs12',
  });
});
afterAll(async () => {
  await emu?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function spec(refresh: string, extra = ''): string {
  const v = emu.ipVaultUrl;
  return `apiVersion: sidekey.io/v1
kind: SecretSpec
output:
  dir: ./out
refresh: ${refresh}
secrets:
  db-password:
    ref: azure:${v}/secrets/db#password
  api-key:
    ref: azure:${v}/secrets/api-key
  tls.key:
    ref: azure:${v}/secrets/tls#key
  tls.crt:
    ref: azure:${v}/secrets/tls#chain
  p12.key:
    ref: azure:${v}/secrets/p12#key
${extra}`;
}

const out = (f: string) => readFileSync(path.join(dir, 'out', f), 'utf8');

describe('sidekey agent with azure: refs against the Key Vault emulator', () => {
  it('agent --once renders every file and exits 0, printing no value or token', async () => {
    writeFileSync(path.join(dir, 'sidekey.yaml'), spec('5m'));
    const r = await runCli(['agent', '--once', '-c', 'sidekey.yaml'], { cwd: dir, env });
    expect(r.code, r.stderr).toBe(0);
    expect(out('db-password')).toBe(CANARY);
    expect(out('api-key')).toBe(`k1-${CANARY}`);
    expect(out('tls.key')).toContain('BEGIN PRIVATE KEY');
    expect(out('tls.crt').match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(out('p12.key')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const printed = r.stdout + r.stderr;
    expect(printed).not.toContain(CANARY);
    expect(printed).not.toContain(PROJECTED);
    for (const t of emu.issued) expect(printed).not.toContain(t);
    expect(emu.assertions.at(-1)).toBe(PROJECTED);
  });

  it('agent --once with the workload identity in the spec (backends.azure) instead of the environment', async () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'sidekey-azure-agent-spec-'));
    const backends = `backends:
  azure:
    tenantId: ${emu.tenantId}
    clientId: ${emu.clientId}
    authorityHost: ${emu.authorityHost}
    tokenFile: ${path.join(dir, 'azure-identity-token')}
`;
    writeFileSync(path.join(d, 'sidekey.yaml'), spec('5m').replace('secrets:\n', `${backends}secrets:\n`));
    const r = await runCli(['agent', '--once', '-c', 'sidekey.yaml'], {
      cwd: d,
      env: { NODE_EXTRA_CA_CERTS: env.NODE_EXTRA_CA_CERTS },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(path.join(d, 'out', 'db-password'), 'utf8')).toBe(CANARY);
    // a setting of the wrong shape is refused when the spec loads, naming the field
    writeFileSync(
      path.join(d, 'sidekey.yaml'),
      spec('5m').replace('secrets:\n', 'backends:\n  azure:\n    cloud: mars\nsecrets:\n'),
    );
    const bad = await runCli(['agent', '--once', '-c', 'sidekey.yaml'], { cwd: d, env: {} });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('backends.azure.cloud');
    rmSync(d, { recursive: true, force: true });
  });

  it('off the cluster (no token file): DefaultAzureCredential, here its Azure CLI credential, loaded on use', async () => {
    // A stand-in for the developer's `az` (none is installed here): it answers `az account
    // get-access-token` as the Azure CLI does, with a token the emulated Entra issued.
    const d = mkdtempSync(path.join(os.tmpdir(), 'sidekey-azure-agent-cli-'));
    const token = emu.issueToken();
    const exp = Math.floor(Date.now() / 1000) + 3600;
    writeFileSync(
      path.join(d, 'az'),
      `#!/bin/sh\necho "$@" > "${path.join(d, 'az-args')}"\nprintf '{"accessToken":"${token}","expires_on":${exp},"tokenType":"Bearer"}'\n`,
      { mode: 0o755 },
    );
    writeFileSync(path.join(d, 'sidekey.yaml'), spec('5m'));
    const r = await runCli(['agent', '--once', '-c', 'sidekey.yaml'], {
      cwd: d,
      env: {
        NODE_EXTRA_CA_CERTS: env.NODE_EXTRA_CA_CERTS,
        PATH: `${d}:${process.env.PATH}`,
        AZURE_TOKEN_CREDENTIALS: 'AzureCliCredential', // only the CLI: no managed-identity probe
      },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(path.join(d, 'out', 'api-key'), 'utf8')).toBe(`k1-${CANARY}`);
    // the resource is the one the vault's challenge named
    expect(readFileSync(path.join(d, 'az-args'), 'utf8')).toContain('--resource https://127.0.0.1');
    expect(r.stdout + r.stderr).not.toContain(token);
    // no credential at all: one SK_ERR_BACKEND_AUTH line naming the ref and what to do
    const none = await runCli(['agent', '--once', '-c', 'sidekey.yaml'], {
      cwd: d,
      env: {
        NODE_EXTRA_CA_CERTS: env.NODE_EXTRA_CA_CERTS,
        PATH: path.join(d, 'empty'),
        AZURE_TOKEN_CREDENTIALS: 'AzureCliCredential',
      },
    });
    expect(none.code).toBe(1);
    const line = none.stderr.split('\n').find((l) => l.startsWith('SK_ERR_'));
    expect(line).toMatch(
      /^SK_ERR_BACKEND_AUTH: azure:https:\/\/127\.0\.0\.1:\d+\/secrets\/\S+: azure token request/,
    );
    expect(line).toContain('az login');
    rmSync(d, { recursive: true, force: true });
  });

  it('agent --once fails with one typed line naming the ref for a disabled secret', async () => {
    emu.setSecret('retired', CANARY);
    emu.disable('retired');
    const d = mkdtempSync(path.join(os.tmpdir(), 'sidekey-azure-agent-bad-'));
    const ref = `azure:${emu.ipVaultUrl}/secrets/retired`;
    writeFileSync(path.join(d, 'sidekey.yaml'), spec('5m', `  retired:\n    ref: ${ref}\n`));
    const r = await runCli(['agent', '--once', '-c', 'sidekey.yaml'], { cwd: d, env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('SK_ERR_SOURCE_UNREADABLE');
    expect(r.stderr).toContain(ref);
    expect(r.stderr).toContain('disabled');
    expect(r.stdout + r.stderr).not.toContain(CANARY);
    rmSync(d, { recursive: true, force: true });
  });

  it('a long-running agent picks up a new secret version, and keeps the last good files while Key Vault fails', async () => {
    writeFileSync(path.join(dir, 'sidekey.yaml'), spec('1s'));
    const agent = spawnCli(['agent', '-c', 'sidekey.yaml'], { cwd: dir, env });
    try {
      await agent.waitForOutput('ready: first complete write done', 30_000);
      expect(out('api-key')).toBe(`k1-${CANARY}`);
      // Key Vault unavailable for a while: the files stay as they were
      emu.fault({ status: 503 }, 8);
      await waitFor(() => emu.requests.filter((q) => q.status === 503).length >= 4, 15_000, 100);
      expect(out('api-key')).toBe(`k1-${CANARY}`);
      emu.clearFaults();
      // rotation: a new version
      emu.setSecret('api-key', `k2-${CANARY}`);
      await waitFor(() => out('api-key') === `k2-${CANARY}`, 20_000, 100);
      expect(out('db-password')).toBe(CANARY);
    } finally {
      const r = await agent.stop('SIGTERM');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout + r.stderr).not.toContain(CANARY);
    }
  });
});
