import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { Compute, ExternalAccountClient, OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32c } from '../../../src/providers/gcp/crc32c.ts';
import { GcpProvider } from '../../../src/providers/gcp/index.ts';
import { parseRef } from '../../../src/refs.ts';
import { type GcpEmulator, startGcpEmulator } from '../servers/gcp-emulator.ts';
import { testCtx } from './vault-fixture.ts';

// Is the emulator faithful to the wire protocols, or only to sidekey's idea of them? Google's own
// client libraries (dev dependencies only; the agent does not ship them) drive it here: the Secret
// Manager client over its REST transport, and google-auth-library's metadata (Compute) and
// Workload Identity Federation (ExternalAccountClient with impersonation) clients. What they write,
// sidekey's provider reads, and the other way round.

const GSA = 'node@sk-emulated.iam.gserviceaccount.com';
let emu: GcpEmulator;
let dir: string;
let sm: SecretManagerServiceClient;
const ctx = testCtx();

beforeAll(async () => {
  emu = await startGcpEmulator({ metadataServiceAccount: GSA });
  dir = mkdtempSync(path.join(os.tmpdir(), 'sk-gcp-fid-'));
  const admin = new OAuth2Client();
  admin.setCredentials({ access_token: emu.adminToken, expiry_date: Date.now() + 3_600_000 });
  const u = new URL(emu.url);
  sm = new SecretManagerServiceClient({
    fallback: true,
    apiEndpoint: u.hostname,
    port: Number(u.port),
    protocol: 'http',
    authClient: admin,
  });
});
afterAll(async () => {
  await sm?.close();
  await emu?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the GCP emulator, driven by Google client libraries', () => {
  it('Secret Manager client (REST): create, addVersion with CRC32C, access latest, get, disable, destroy, errors', async () => {
    const parent = `projects/${emu.projectId}`;
    const [secret] = await sm.createSecret({
      parent,
      secretId: 'fid',
      secret: { replication: { automatic: {} } },
    });
    expect(secret.name).toBe(`projects/${emu.projectNumber}/secrets/fid`);
    const data = Buffer.from('s3cr3t-v1');
    const [v1] = await sm.addSecretVersion({
      parent: secret.name!,
      payload: { data, dataCrc32c: crc32c(data) },
    });
    expect(v1.name).toBe(`projects/${emu.projectNumber}/secrets/fid/versions/1`);
    const [got] = await sm.accessSecretVersion({ name: `${parent}/secrets/fid/versions/latest` });
    expect(Buffer.from(got.payload!.data as Uint8Array).toString()).toBe('s3cr3t-v1');
    expect(Number(got.payload!.dataCrc32c)).toBe(crc32c(data));

    // a wrong client checksum is refused
    await expect(
      sm.addSecretVersion({ parent: secret.name!, payload: { data, dataCrc32c: crc32c(data) + 1 } }),
    ).rejects.toMatchObject({ code: 3 }); // INVALID_ARGUMENT

    // rotation through the client; sidekey's provider sees version 2
    await sm.addSecretVersion({ parent: secret.name!, payload: { data: Buffer.from('s3cr3t-v2') } });
    emu.grant(`serviceAccount:${GSA}`, 'fid');
    const p = new GcpProvider(
      { project: emu.projectId, endpoint: emu.url, metadataHost: emu.host },
      { env: {}, retry: { backoffMs: 20 } },
    );
    const r = await p.fetch(parseRef('gcp:fid'), ctx);
    expect(r.version).toBe('2');

    const [disabled] = await sm.disableSecretVersion({ name: `${parent}/secrets/fid/versions/2` });
    expect(disabled.state).toBe('DISABLED');
    const [meta] = await sm.getSecretVersion({ name: `${parent}/secrets/fid/versions/2` });
    expect(meta.state).toBe('DISABLED');
    await expect(
      sm.accessSecretVersion({ name: `${parent}/secrets/fid/versions/latest` }),
    ).rejects.toMatchObject({
      code: 9, // FAILED_PRECONDITION
    });
    await expect(p.fetch(parseRef('gcp:fid'), ctx)).rejects.toMatchObject({
      code: 'SK_ERR_SOURCE_UNREADABLE',
    });

    const [destroyed] = await sm.destroySecretVersion({ name: `${parent}/secrets/fid/versions/1` });
    expect(destroyed.state).toBe('DESTROYED');
    await expect(p.fetch(parseRef('gcp:fid/versions/1'), ctx)).rejects.toMatchObject({
      code: 'SK_ERR_SOURCE_NOT_FOUND',
    });

    await sm.deleteSecret({ name: `${parent}/secrets/fid` });
    await expect(sm.accessSecretVersion({ name: `${parent}/secrets/fid/versions/1` })).rejects.toMatchObject({
      code: 5, // NOT_FOUND
    });
    await p.close();
  });

  it("google-auth-library's metadata client gets a token the emulated APIs accept", async () => {
    const saved = process.env.GCE_METADATA_HOST;
    process.env.GCE_METADATA_HOST = emu.host;
    try {
      const c = new Compute();
      const { token } = await c.getAccessToken();
      expect(token).toMatch(/^ya29\.emu-/);
      emu.addVersion('from-metadata', 'ok');
      emu.grant(`serviceAccount:${GSA}`, 'from-metadata');
      const res = await fetch(
        `${emu.url}/v1/projects/${emu.projectId}/secrets/from-metadata/versions/latest:access`,
        { headers: { authorization: `Bearer ${token}` } },
      );
      expect(res.status).toBe(200);
    } finally {
      if (saved === undefined) delete process.env.GCE_METADATA_HOST;
      else process.env.GCE_METADATA_HOST = saved;
    }
  });

  it("google-auth-library's federation client (STS + impersonation) gets a token of the service account", async () => {
    const sub = 'system:serviceaccount:shop:lib';
    const sa = 'lib@sk-emulated.iam.gserviceaccount.com';
    const tokenFile = path.join(dir, 'token');
    writeFileSync(tokenFile, emu.mintK8sToken({ sub }));
    emu.allowImpersonation(sa, emu.federatedPrincipal(sub));
    const client = ExternalAccountClient.fromJSON({
      type: 'external_account',
      audience: emu.providerName,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_url: `${emu.url}/v1/token`,
      service_account_impersonation_url: `${emu.url}/v1/projects/-/serviceAccounts/${sa}:generateAccessToken`,
      credential_source: { file: tokenFile },
      scopes: ['https://www.googleapis.com/auth/cloud-platform'],
    });
    expect(client).not.toBeNull();
    const stsBefore = emu.count('sts');
    const { token } = await client!.getAccessToken();
    expect(emu.count('sts')).toBe(stsBefore + 1);
    expect(emu.count('iam')).toBeGreaterThan(0);
    emu.addVersion('from-lib', 'ok');
    emu.grant(`serviceAccount:${sa}`, 'from-lib');
    const res = await fetch(
      `${emu.url}/v1/projects/${emu.projectId}/secrets/from-lib/versions/latest:access`,
      {
        headers: { authorization: `Bearer ${token}` },
      },
    );
    expect(res.status).toBe(200);
    expect(emu.log.at(-1)!.principal).toBe(`serviceAccount:${sa}`);
  });
});
