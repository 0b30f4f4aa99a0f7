import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { WorkloadIdentityCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AzureEmulator, startAzureEmulator } from '../servers/azure-emulator.ts';

// The Key Vault / Entra emulator, driven by the real Azure SDK: @azure/keyvault-secrets (its
// challenge-based authentication, including its check that the challenge resource is the vault's own
// domain, its identifier parsing, its error mapping) and @azure/identity's WorkloadIdentityCredential
// (MSAL's client-assertion request). What passes here is what sidekey's own client is tested against.

let emu: AzureEmulator;
let dir: string;
let agent: https.Agent;
const PROJECTED = 'eyJhbGciOiJSUzI1NiJ9.projected-service-account-token.sig';

beforeAll(async () => {
  emu = await startAzureEmulator();
  dir = mkdtempSync(path.join(os.tmpdir(), 'sk-azure-sdk-'));
  writeFileSync(path.join(dir, 'token'), PROJECTED);
  emu.trustAssertion(PROJECTED);
  agent = new https.Agent({ ca: emu.ca, lookup: emu.lookup, keepAlive: false });
});
afterAll(async () => {
  agent?.destroy();
  await emu?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function credential(): WorkloadIdentityCredential {
  return new WorkloadIdentityCredential({
    tenantId: emu.tenantId,
    clientId: emu.clientId,
    tokenFilePath: path.join(dir, 'token'),
    authorityHost: emu.authorityHost,
    disableInstanceDiscovery: true,
    agent,
  } as ConstructorParameters<typeof WorkloadIdentityCredential>[0]);
}

function client(vaultUrl = emu.vaultUrl, extra: Record<string, unknown> = {}): SecretClient {
  return new SecretClient(vaultUrl, credential(), {
    agent,
    retryOptions: { maxRetries: 1, retryDelayInMs: 10 },
    ...extra,
  });
}

describe('Key Vault emulator, driven by the Azure SDK', () => {
  it('answers getSecret through the 401 challenge and a workload-identity token', async () => {
    const v1 = emu.setSecret('sdk-app', 'first');
    const before = emu.requests.length;
    const s = await client().getSecret('sdk-app');
    expect(s.value).toBe('first');
    expect(s.properties.version).toBe(v1);
    expect(s.properties.vaultUrl).toContain(emu.vaultName);
    const seen = emu.requests.slice(before);
    // challenge first (no bearer), MSAL's tenant metadata, the token request, the read with the bearer
    expect(seen.map((r) => `${r.method} ${r.path} ${r.auth}:${r.status}`)).toEqual([
      'GET /secrets/sdk-app/ none:401', // the SDK asks for the current version as an empty version segment
      `GET /${emu.tenantId}/v2.0/.well-known/openid-configuration none:200`,
      `POST /${emu.tenantId}/oauth2/v2.0/token token:200`,
      'GET /secrets/sdk-app/ issued:200',
    ]);
    expect(emu.assertions.at(-1)).toBe(PROJECTED);
  });

  it('serves a new version after rotation, and a pinned old version', async () => {
    const v1 = emu.setSecret('sdk-rot', 'one');
    const v2 = emu.setSecret('sdk-rot', 'two');
    const c = client();
    expect((await c.getSecret('sdk-rot')).properties.version).toBe(v2);
    expect((await c.getSecret('sdk-rot', { version: v1 })).value).toBe('one');
  });

  it('gives the SDK the documented errors: SecretNotFound, SecretDisabled, throttled with Retry-After', async () => {
    const c = client();
    await expect(c.getSecret('sdk-never')).rejects.toMatchObject({ statusCode: 404, code: 'SecretNotFound' });
    emu.setSecret('sdk-off', 'x');
    emu.disable('sdk-off');
    await expect(c.getSecret('sdk-off')).rejects.toMatchObject({ statusCode: 403, code: 'Forbidden' });
    emu.setSecret('sdk-throttle', 'ok');
    emu.fault({ status: 429, headers: { 'retry-after': '0' } });
    expect((await c.getSecret('sdk-throttle')).value).toBe('ok'); // the SDK retried after Retry-After
  });

  it('the SDK refuses a vault whose challenge names another domain (challenge-resource verification)', async () => {
    // The loopback address challenges with resource https://127.0.0.1: not a parent domain of the
    // request host for the SDK's rule, so it refuses to send a token there...
    await expect(client(emu.ipVaultUrl).getSecret('sdk-app')).rejects.toThrow(/challenge resource/);
    // ...unless told to skip the check (the SDK's documented option for such endpoints).
    emu.setSecret('sdk-ip', 'by-address');
    const s = await client(emu.ipVaultUrl, { disableChallengeResourceVerification: true }).getSecret(
      'sdk-ip',
    );
    expect(s.value).toBe('by-address');
  });

  it("refuses a client assertion that is not the trusted projected token (the SDK's error names AADSTS70021)", async () => {
    writeFileSync(path.join(dir, 'other'), 'not-the-projected-token');
    const cred = new WorkloadIdentityCredential({
      tenantId: emu.tenantId,
      clientId: emu.clientId,
      tokenFilePath: path.join(dir, 'other'),
      authorityHost: emu.authorityHost,
      disableInstanceDiscovery: true,
      agent,
    } as ConstructorParameters<typeof WorkloadIdentityCredential>[0]);
    const c = new SecretClient(emu.vaultUrl, cred, { agent, retryOptions: { maxRetries: 0 } });
    await expect(c.getSecret('sdk-app')).rejects.toThrow(/AADSTS70021/);
  });
});
