import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SkError } from '../../../src/errors.ts';
import {
  AZURE_MAX_ATTEMPTS,
  AzureProvider,
  type AzureProviderOptions,
  azureProvider,
} from '../../../src/providers/azure/index.ts';
import type { AzureSettings } from '../../../src/providers/azure/settings.ts';
import { selectKey } from '../../../src/providers/select-key.ts';
import { parseRef } from '../../../src/refs.ts';
import { createCa } from '../../e2e/harness/pki.ts';
import { skErr, text } from '../../helpers/provider.ts';
import {
  CANARY,
  describeProviderContract,
  expectNoCanary,
  type ProviderHarness,
  recordingContext,
} from '../../unit/providers/contract.ts';
import { type AzureEmulator, startAzureEmulator } from '../servers/azure-emulator.ts';

// The azure: provider against the Key Vault / Entra emulator (test/integration/servers/azure-emulator.ts,
// itself checked against the real Azure SDK in azure-emulator-sdk.test.ts), over HTTPS on loopback.

const PROJECTED = 'eyJhbGciOiJSUzI1NiJ9.projected-sa-token-1.sig';

interface Setup {
  emu: AzureEmulator;
  dir: string;
  tokenFile: string;
  settings: AzureSettings;
  opts: AzureProviderOptions;
}

async function setup(): Promise<Setup> {
  const emu = await startAzureEmulator();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sk-azure-'));
  const tokenFile = path.join(dir, 'azure-identity-token');
  writeFileSync(tokenFile, PROJECTED);
  emu.trustAssertion(PROJECTED);
  return {
    emu,
    dir,
    tokenFile,
    settings: {
      vaultSuffix: `${emu.suffix}:${emu.port}`,
      tenantId: emu.tenantId,
      clientId: emu.clientId,
      authorityHost: emu.authorityHost,
      tokenFile,
    },
    opts: { http: { ca: emu.ca, lookup: emu.lookup }, retry: { baseMs: 5 } },
  };
}

describeProviderContract(
  'azure Key Vault (emulator)',
  { nestedMaps: true, fetchMany: false, watch: false, unreadable: true },
  async (): Promise<ProviderHarness> => {
    const s = await setup();
    const provider = new AzureProvider(s.settings, s.opts);
    const ref = (name: string) => `azure:${s.emu.vaultName}/${name}`;
    return {
      provider,
      async putString(name, value) {
        s.emu.setSecret(name, value);
        return ref(name);
      },
      async putMap(name, data) {
        s.emu.setSecret(name, JSON.stringify(data));
        return ref(name);
      },
      async putUnreadable(name, content) {
        s.emu.setSecret(name, content, { contentType: 'application/x-pem-file' });
        return ref(name);
      },
      remove: async (name) => s.emu.remove(name),
      missingRef: () => ref('never-written'),
      async close() {
        await provider.close();
        await s.emu.stop();
        rmSync(s.dir, { recursive: true, force: true });
      },
    };
  },
);

let s: Setup;
const ctx = recordingContext();
beforeAll(async () => {
  s = await setup();
});
afterAll(async () => {
  await s?.emu.stop();
  if (s) rmSync(s.dir, { recursive: true, force: true });
  const logged = ctx.lines.join('\n');
  expect(logged).not.toContain(CANARY);
});

function provider(over: Partial<AzureSettings> = {}, opts: AzureProviderOptions = {}): AzureProvider {
  return new AzureProvider({ ...s.settings, ...over }, { ...s.opts, ...opts });
}
const ref = (name: string, extra = '') => `azure:${s.emu.vaultName}/${name}${extra}`;

/** Nothing secret in an error: no value, no token the emulator issued, no client assertion. */
function expectClean(e: SkError): void {
  expectNoCanary(e);
  const all = `${e.message} ${String(e)} ${JSON.stringify(e)}`;
  for (const t of s.emu.issued) expect(all).not.toContain(t);
  expect(all).not.toContain(PROJECTED);
  expect(all).not.toContain('emulated-'); // request ids
}

describe('azure provider against the Key Vault emulator', () => {
  it('reads a secret through the challenge, exchanging the projected token (re-read each exchange)', async () => {
    const v = s.emu.setSecret('app-db', `pw-${CANARY}`);
    const p = provider();
    const before = s.emu.requests.length;
    const r = await p.fetch(parseRef(ref('app-db')), ctx);
    expect(text(r.value)).toBe(`pw-${CANARY}`);
    expect(r.version).toBe(v);
    const seen = s.emu.requests.slice(before).map((x) => `${x.method} ${x.path} ${x.auth}:${x.status}`);
    expect(seen).toEqual([
      'GET /secrets/app-db none:401',
      `POST /${s.emu.tenantId}/oauth2/v2.0/token token:200`,
      'GET /secrets/app-db issued:200',
    ]);
    expect(s.emu.assertions.at(-1)).toBe(PROJECTED);
    // cached: the next read is one request with the same bearer
    await p.fetch(parseRef(ref('app-db')), ctx);
    expect(s.emu.requests.length).toBe(before + 4);
    // the kubelet rotates the token file; a revoked bearer forces a new exchange, with the new file
    const rotated = 'eyJhbGciOiJSUzI1NiJ9.projected-sa-token-2.sig';
    s.emu.trustAssertion(rotated);
    writeFileSync(s.tokenFile, rotated);
    s.emu.revokeTokens();
    expect(text((await p.fetch(parseRef(ref('app-db')), ctx)).value)).toBe(`pw-${CANARY}`);
    expect(s.emu.assertions.at(-1)).toBe(rotated);
    writeFileSync(s.tokenFile, PROJECTED);
    await p.close();
  });

  it('50 reads at once: one challenge and one token exchange between them', async () => {
    const p = provider();
    for (let i = 0; i < 50; i++) s.emu.setSecret(`many-${i}`, `v${i}`);
    const before = s.emu.requests.length;
    const exchanges = s.emu.assertions.length;
    const rs = await Promise.all(
      Array.from({ length: 50 }, (_, i) => p.fetch(parseRef(ref(`many-${i}`)), ctx)),
    );
    expect(rs.map((r) => text(r.value))).toEqual(Array.from({ length: 50 }, (_, i) => `v${i}`));
    const seen = s.emu.requests.slice(before);
    expect(seen.filter((r) => r.auth === 'none')).toHaveLength(1);
    expect(s.emu.assertions.length - exchanges).toBe(1);
    expect(seen.filter((r) => r.auth === 'issued')).toHaveLength(50);
    await p.close();
  });

  it('a short-lived access token is not reused past 5 minutes before its expiry', async () => {
    const short = await startAzureEmulator({ tokenLifetimeSec: 240 });
    short.trustAssertion(PROJECTED);
    short.setSecret('x', 'v');
    const p = new AzureProvider(
      { ...s.settings, vaultSuffix: `${short.suffix}:${short.port}`, authorityHost: short.authorityHost },
      { http: { ca: short.ca, lookup: short.lookup }, retry: { baseMs: 5 } },
    );
    try {
      await p.fetch(parseRef(`azure:${short.vaultName}/x`), ctx);
      await p.fetch(parseRef(`azure:${short.vaultName}/x`), ctx);
      expect(short.assertions).toHaveLength(2); // a 4-minute token is already inside the 5-minute margin
    } finally {
      await p.close();
      await short.stop();
    }
  });

  it('takes the workload identity from the AZURE_* environment (as the webhook sets it), URL-form refs', async () => {
    const p = new AzureProvider(
      {},
      {
        ...s.opts,
        env: {
          AZURE_CLIENT_ID: s.emu.clientId,
          AZURE_TENANT_ID: s.emu.tenantId,
          AZURE_FEDERATED_TOKEN_FILE: s.tokenFile,
          AZURE_AUTHORITY_HOST: s.emu.authorityHost,
        },
      },
    );
    s.emu.setSecret('by-url', 'u');
    const r = await p.fetch(parseRef(`azure:${s.emu.ipVaultUrl}/secrets/by-url`), ctx);
    expect(text(r.value)).toBe('u');
    expect(p.tokens.describe).toContain(s.emu.clientId);
    await p.close();
  });

  it('rotation: a new version is a new version id; a pinned version stays', async () => {
    const p = provider();
    const v1 = s.emu.setSecret('rot', 'one');
    const a = await p.fetch(parseRef(ref('rot')), ctx);
    const v2 = s.emu.setSecret('rot', 'two');
    const b = await p.fetch(parseRef(ref('rot')), ctx);
    expect([a.version, b.version]).toEqual([v1, v2]);
    expect(text(b.value)).toBe('two');
    const pinned = await p.fetch(parseRef(ref('rot', `/${v1}`)), ctx);
    expect([pinned.version, text(pinned.value)]).toEqual([v1, 'one']);
    const err = await skErr(p.fetch(parseRef(ref('rot', `/${'0'.repeat(32)}`)), ctx));
    expect(err.code).toBe('SK_ERR_SOURCE_NOT_FOUND');
    await p.close();
  });

  it('#key into a JSON secret', async () => {
    const p = provider();
    s.emu.setSecret('json', JSON.stringify({ user: 'app', pass: CANARY }));
    const raw = ref('json', '#pass');
    expect(text(selectKey((await p.fetch(parseRef(raw), ctx)).value, parseRef(raw)))).toBe(CANARY);
    await p.close();
  });

  it('a disabled secret: SK_ERR_SOURCE_UNREADABLE naming the ref and call', async () => {
    const p = provider();
    s.emu.setSecret('off', CANARY);
    s.emu.disable('off');
    const e = await skErr(p.fetch(parseRef(ref('off')), ctx));
    expect(e.code).toBe('SK_ERR_SOURCE_UNREADABLE');
    expect(e.message).toMatch(
      new RegExp(`^${ref('off')}: azure GetSecret .*/off: the secret version is disabled`),
    );
    expectClean(e);
    await p.close();
  });

  it('403 denied: SK_ERR_BACKEND_DENIED naming the role, not retried', async () => {
    const p = provider();
    s.emu.setSecret('denied', CANARY);
    s.emu.fault({ status: 403 });
    const before = s.emu.requests.length;
    const e = await skErr(p.fetch(parseRef(ref('denied')), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_DENIED');
    expect(e.message).toContain('Key Vault Secrets User');
    expect(e.message).toContain('ForbiddenByRbac');
    expect(s.emu.requests.slice(before).filter((r) => r.status === 403)).toHaveLength(1);
    expectClean(e);
    await p.close();
  });

  it('503: retried and recovered; persistent 503: bounded attempts, then SK_ERR_BACKEND_UNAVAILABLE', async () => {
    const p = provider();
    s.emu.setSecret('flaky', 'ok');
    await p.fetch(parseRef(ref('flaky')), ctx); // challenge and token done
    s.emu.fault({ status: 503 }, 2);
    const n0 = p.stats.requests;
    expect(text((await p.fetch(parseRef(ref('flaky')), ctx)).value)).toBe('ok');
    expect(p.stats.requests - n0).toBe(3);
    s.emu.fault({ status: 503 }, 100);
    const n1 = p.stats.requests;
    const e = await skErr(p.fetch(parseRef(ref('flaky')), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toContain(`after ${AZURE_MAX_ATTEMPTS} attempts`);
    expect(p.stats.requests - n1).toBe(AZURE_MAX_ATTEMPTS);
    expectClean(e);
    s.emu.clearFaults();
    await p.close();
  });

  it('429: waits the Retry-After it is given; a Retry-After beyond the bound fails at once', async () => {
    const p = provider();
    s.emu.setSecret('busy', 'ok');
    await p.fetch(parseRef(ref('busy')), ctx);
    s.emu.fault({ status: 429, headers: { 'retry-after': '1' } });
    const t0 = Date.now();
    expect(text((await p.fetch(parseRef(ref('busy')), ctx)).value)).toBe('ok');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    s.emu.fault({ status: 429, headers: { 'retry-after': '120' } });
    const n = p.stats.requests;
    const e = await skErr(p.fetch(parseRef(ref('busy')), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toContain('throttled');
    expect(e.message).toContain('asks to wait 120 s');
    expect(p.stats.requests - n).toBe(1);
    await p.close();
  });

  it('a garbage answer: SK_ERR_BACKEND_RESPONSE without the body', async () => {
    const p = provider();
    s.emu.setSecret('garbage', 'ok');
    s.emu.fault({ status: 200, body: `<html>proxy says ${CANARY}</html>` });
    const e = await skErr(p.fetch(parseRef(ref('garbage')), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_RESPONSE');
    expect(e.message).toContain('not JSON');
    expectClean(e);
    s.emu.fault({ status: 200, body: { id: 'nope', value: 1 } });
    expect((await skErr(p.fetch(parseRef(ref('garbage')), ctx))).code).toBe('SK_ERR_BACKEND_RESPONSE');
    await p.close();
  });

  it('an unknown vault name: SK_ERR_SOURCE_NOT_FOUND (its host does not resolve)', async () => {
    const p = provider();
    const raw = 'azure:no-such-vault/x';
    const e = await skErr(p.fetch(parseRef(raw), ctx));
    expect(e.code).toBe('SK_ERR_SOURCE_NOT_FOUND');
    expect(e.message).toContain(raw);
    expect(e.message).toContain('no such vault');
    await p.close();
  });

  it('refuses to send a token to a vault whose challenge names another domain', async () => {
    const p = provider();
    s.emu.challengeResource('https://vault.azure.net');
    try {
      const e = await skErr(p.fetch(parseRef(ref('app-db')), ctx));
      expect(e.code).toBe('SK_ERR_BACKEND_RESPONSE');
      expect(e.message).toContain('not its domain');
      expect(s.emu.requests.at(-1)?.auth).toBe('none'); // no bearer was ever sent
    } finally {
      s.emu.challengeResource(undefined);
    }
    await p.close();
  });

  it('Entra failures: untrusted assertion → AUTH (AADSTS70021 with the fix); unknown client; 503 retried', async () => {
    writeFileSync(path.join(s.dir, 'stranger'), `not-trusted-${CANARY}`);
    const p = provider({ tokenFile: path.join(s.dir, 'stranger') });
    s.emu.setSecret('t', 'v');
    const e = await skErr(p.fetch(parseRef(ref('t')), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_AUTH');
    expect(e.message).toContain('azure Entra token exchange');
    expect(e.message).toContain('AADSTS70021');
    expect(e.message).toContain('federated identity credential');
    expectClean(e);
    await p.close();

    const q = provider({ clientId: 'ffffffff-0000-0000-0000-000000000000' });
    const e2 = await skErr(q.fetch(parseRef(ref('t')), ctx));
    expect([e2.code, /AADSTS700016/.test(e2.message)]).toEqual(['SK_ERR_BACKEND_AUTH', true]);
    await q.close();

    const r = provider();
    s.emu.tokenFault({ status: 503 }, 2);
    expect(text((await r.fetch(parseRef(ref('t')), ctx)).value)).toBe('v');
    await r.close();
  });

  it('bad settings: a missing token file, client id or tenant id is SK_ERR_BACKEND_CONFIG naming the setting', async () => {
    const p = provider({ tokenFile: path.join(s.dir, 'absent') });
    const e = await skErr(p.fetch(parseRef(ref('t')), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_CONFIG');
    expect(e.message).toContain('backends.azure.tokenFile');
    expect(e.message).toContain('does not exist');
    await p.close();
    const noClient = () =>
      new AzureProvider({ tokenFile: s.tokenFile, tenantId: s.emu.tenantId }, { env: {} });
    expect(() => noClient()).toThrow(/backends\.azure\.clientId \(or AZURE_CLIENT_ID\): not set/);
    expect(
      () => new AzureProvider({}, { env: { AZURE_FEDERATED_TOKEN_FILE: 'f', AZURE_CLIENT_ID: 'c' } }),
    ).toThrow(/AZURE_TENANT_ID/);
    expect(() => new AzureProvider({ cloud: 'mars' } as never)).toThrow(/backends\.azure\.cloud/);
  });

  it('certificate secrets: PEM stays PEM and splits into key/cert/chain/ca; PKCS#12 (RSA, EC) becomes the same', async () => {
    const p = provider();
    const ca = await createCa('CN=kv-test-ca');
    const leaf = await ca.sign({ subject: 'CN=app.example', dns: ['app.example'], usage: 'server' });
    const pemBundle = `${leaf.keyPem}${leaf.certPem}${ca.certPem}`;
    s.emu.setSecret('tls-pem', pemBundle, { contentType: 'application/x-pem-file' });
    const r = await p.fetch(parseRef(ref('tls-pem')), ctx);
    const pick = (k: string) => text(selectKey(r.value, parseRef(ref('tls-pem', `#${k}`))));
    expect(pick('pem')).toBe(pemBundle);
    expect(pick('key')).toContain('BEGIN PRIVATE KEY');
    expect(pick('cert').trim()).toBe(leaf.certPem.trim());
    expect(pick('chain').replace(/\s/g, '')).toBe(`${leaf.certPem}${ca.certPem}`.replace(/\s/g, ''));
    expect(pick('ca').replace(/\s/g, '')).toBe(ca.certPem.replace(/\s/g, ''));

    // PKCS#12 with an RSA key, as Key Vault exports it (no password, 3DES bags): made with node-forge
    const keys = forge.pki.rsa.generateKeyPair(2048);
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = '01';
    cert.validity.notBefore = new Date();
    cert.validity.notAfter = new Date(Date.now() + 86_400_000);
    cert.setSubject([{ name: 'commonName', value: 'rsa.example' }]);
    cert.setIssuer([{ name: 'commonName', value: 'rsa.example' }]);
    cert.sign(keys.privateKey, forge.md.sha256.create());
    const p12 = forge.pkcs12.toPkcs12Asn1(keys.privateKey, [cert], '', { algorithm: '3des' });
    const b64 = Buffer.from(forge.asn1.toDer(p12).getBytes(), 'binary').toString('base64');
    s.emu.setSecret('tls-p12-rsa', b64, { contentType: 'application/x-pkcs12' });
    const rsa = await p.fetch(parseRef(ref('tls-p12-rsa')), ctx);
    const rsaKey = text(selectKey(rsa.value, parseRef(ref('tls-p12-rsa', '#key'))));
    expect(rsaKey).toContain('BEGIN PRIVATE KEY');
    expect(text(selectKey(rsa.value, parseRef(ref('tls-p12-rsa', '#cert'))))).toBe(
      forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n'),
    );

    // PKCS#12 with an EC key (node-forge cannot decode EC keys itself), PBES2/AES as OpenSSL 3 writes it
    const d = mkdtempSync(path.join(os.tmpdir(), 'sk-p12-'));
    writeFileSync(path.join(d, 'key.pem'), leaf.keyPem);
    writeFileSync(path.join(d, 'cert.pem'), leaf.certPem);
    writeFileSync(path.join(d, 'ca.pem'), ca.certPem);
    execFileSync('openssl', [
      'pkcs12',
      '-export',
      '-inkey',
      path.join(d, 'key.pem'),
      '-in',
      path.join(d, 'cert.pem'),
      '-certfile',
      path.join(d, 'ca.pem'),
      '-passout',
      'pass:',
      '-out',
      path.join(d, 'b.p12'),
    ]);
    const ecB64 = execFileSync('base64', ['-w0', path.join(d, 'b.p12')]).toString();
    rmSync(d, { recursive: true, force: true });
    s.emu.setSecret('tls-p12-ec', ecB64, { contentType: 'application/x-pkcs12' });
    const ec = await p.fetch(parseRef(ref('tls-p12-ec')), ctx);
    const ecPick = (k: string) => text(selectKey(ec.value, parseRef(ref('tls-p12-ec', `#${k}`))));
    expect(ecPick('cert').trim()).toBe(leaf.certPem.trim());
    expect(ecPick('ca').trim()).toBe(ca.certPem.trim());
    expect(ecPick('key')).toContain('BEGIN PRIVATE KEY');

    // not PKCS#12 at all: unreadable, without the content
    s.emu.setSecret('tls-bad', Buffer.from(`junk ${CANARY}`).toString('base64'), {
      contentType: 'application/x-pkcs12',
    });
    const e = await skErr(p.fetch(parseRef(ref('tls-bad')), ctx));
    expect(e.code).toBe('SK_ERR_SOURCE_UNREADABLE');
    expectClean(e);
    await p.close();
  });

  it('validates refs without I/O', () => {
    expect(() => azureProvider.validateRef(parseRef('azure:myvault/db-password'), 'x')).not.toThrow();
    expect(() => azureProvider.validateRef(parseRef('azure:myvault/x?version=1'), 'where')).toThrow(/where/);
  });
});
