import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GcpProvider } from '../../../src/providers/gcp/index.ts';
import { defaultRegistry } from '../../../src/providers/index.ts';
import { selectKey } from '../../../src/providers/select-key.ts';
import { parseRef } from '../../../src/refs.ts';
import { CANARY } from '../../helpers/cli.ts';
import { skErr as anySkErr, text } from '../../helpers/provider.ts';
import { describeProviderContract, expectNoCanary } from '../../unit/providers/contract.ts';
import { freePort } from '../servers/common.ts';
import { type GcpEmulator, startGcpEmulator } from '../servers/gcp-emulator.ts';
import { testCtx } from './vault-fixture.ts';

// The gcp: provider against the wire-level Google Cloud emulator (test/integration/servers/gcp-emulator.ts):
// Secret Manager v1 REST, STS token exchange, iamcredentials, the metadata server and an OAuth endpoint.

const GSA = 'agent@sk-emulated.iam.gserviceaccount.com';
const ctx = testCtx();
const fast = { backoffMs: 20 };

/** Every error in this file is also checked for the canary. */
const skErr = (p: Promise<unknown>) => anySkErr(p, expectNoCanary);

/** A provider on the GKE path: the metadata server. */
function metadataProvider(emu: GcpEmulator, extra: Record<string, unknown> = {}): GcpProvider {
  return new GcpProvider(
    { project: emu.projectId, endpoint: emu.url, metadataHost: emu.host, ...extra },
    { env: {}, retry: fast },
  );
}

describeProviderContract(
  'gcp (Secret Manager emulator)',
  { nestedMaps: true, fetchMany: false, watch: false, unreadable: true, faults: true },
  async () => {
    const emu = await startGcpEmulator({ metadataServiceAccount: GSA });
    emu.grant(`serviceAccount:${GSA}`, '*');
    const provider = metadataProvider(emu);
    return {
      provider,
      fault: (kind, times) => emu.fault('access', kind, times),
      clearFaults: () => emu.clearFaults(),
      requests: () => emu.count('access'),
      async putString(name, value) {
        emu.addVersion(name, value);
        return `gcp:${name}`;
      },
      async putMap(name, data) {
        emu.addVersion(name, JSON.stringify(data));
        return `gcp:projects/${emu.projectId}/secrets/${name}`;
      },
      async remove(name) {
        emu.deleteSecret(name);
      },
      missingRef: () => 'gcp:no-such-secret',
      async putUnreadable(name, content) {
        emu.addVersion(name, content);
        return `gcp:${name}#a`;
      },
      async close() {
        await provider.close();
        await emu.close();
      },
    };
  },
);

describe('gcp provider against the emulator', () => {
  let emu: GcpEmulator;
  let dir: string;
  beforeAll(async () => {
    emu = await startGcpEmulator({ metadataServiceAccount: GSA });
    emu.grant(`serviceAccount:${GSA}`, '*');
    dir = mkdtempSync(path.join(os.tmpdir(), 'sk-gcp-'));
  });
  afterAll(async () => {
    await emu?.close();
    rmSync(dir, { recursive: true, force: true });
    expect(ctx.lines.join('\n')).not.toContain(CANARY);
  });

  it('is registered and validates refs without I/O', () => {
    const r = defaultRegistry();
    expect(r.has('gcp')).toBe(true);
    expect(() =>
      r.validateRef(parseRef('gcp:projects/p-123456/secrets/db/versions/3#password'), 'x'),
    ).not.toThrow();
    expect(() => r.validateRef(parseRef('gcp:db'), 'x')).not.toThrow();
    expect(() => r.validateRef(parseRef('gcp:projects/p/secrets/a/b'), 'where')).toThrow(/where/);
  });

  it('latest is resolved to its version number; rotation changes it; a pinned version stays', async () => {
    emu.addVersion('rot', 'one');
    const p = metadataProvider(emu);
    const a = await p.fetch(parseRef('gcp:rot'), ctx);
    expect(a.version).toBe('1');
    expect(text(a.value)).toBe('one');
    expect((await p.fetch(parseRef('gcp:rot/versions/latest'), ctx)).version).toBe('1');
    emu.addVersion('rot', `two-${CANARY}`);
    const b = await p.fetch(parseRef(`gcp:projects/${emu.projectId}/secrets/rot`), ctx);
    expect(b.version).toBe('2');
    expect(text(b.value)).toBe(`two-${CANARY}`);
    const pinned = await p.fetch(parseRef('gcp:rot/versions/1'), ctx);
    expect([pinned.version, text(pinned.value)]).toEqual(['1', 'one']);
    // by project number too (the API's own names use it)
    expect((await p.fetch(parseRef(`gcp:projects/${emu.projectNumber}/secrets/rot`), ctx)).version).toBe('2');
    // one token for all of it
    expect(p.tokensFetched).toBe(1);
    await p.close();
  });

  it('#key selects into a JSON payload (a map); binary payloads are exact bytes', async () => {
    emu.addVersion('json', JSON.stringify({ db: { password: CANARY, port: 5432 } }));
    const bin = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 10, 13]);
    emu.addVersion('bin', bin);
    const p = metadataProvider(emu);
    const ref = parseRef('gcp:json#db.password');
    const r = await p.fetch(ref, ctx);
    expect(r.value.kind).toBe('map');
    expect(text(selectKey(r.value, ref))).toBe(CANARY);
    const b = await p.fetch(parseRef('gcp:bin'), ctx);
    expect(b.value.kind === 'bytes' && b.value.bytes.equals(bin)).toBe(true);
    emu.addVersion('notjson', `plain-${CANARY}`);
    const e = await skErr(p.fetch(parseRef('gcp:notjson#k'), ctx));
    expect(e.code).toBe('SK_ERR_SOURCE_UNREADABLE');
    expect(e.message).toContain('gcp:notjson#k');
    await p.close();
  });

  it('a disabled latest version is SK_ERR_SOURCE_UNREADABLE naming its number; destroyed is SK_ERR_SOURCE_NOT_FOUND', async () => {
    emu.addVersion('states', 'v1');
    emu.addVersion('states', `v2-${CANARY}`);
    emu.setState('states', 2, 'DISABLED');
    const p = metadataProvider(emu);
    const e = await skErr(p.fetch(parseRef('gcp:states'), ctx));
    expect(e.code).toBe('SK_ERR_SOURCE_UNREADABLE');
    expect(e.message).toMatch(
      /gcp:states: gcp versions\.access projects\/sk-emulated\/secrets\/states\/versions\/latest: the latest version \(2\) is disabled/,
    );
    expect(text((await p.fetch(parseRef('gcp:states/versions/1'), ctx)).value)).toBe('v1');
    emu.setState('states', 2, 'DESTROYED');
    const d = await skErr(p.fetch(parseRef('gcp:states/versions/2'), ctx));
    expect(d.code).toBe('SK_ERR_SOURCE_NOT_FOUND');
    expect(d.message).toContain('version 2 is destroyed');
    await p.close();
  });

  it('no access (IAM) is SK_ERR_BACKEND_DENIED naming the permission, not retried', async () => {
    const other = await startGcpEmulator({
      metadataServiceAccount: 'nobody@sk-emulated.iam.gserviceaccount.com',
    });
    other.addVersion('locked', CANARY);
    const p = metadataProvider(other);
    const e = await skErr(p.fetch(parseRef('gcp:locked'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_DENIED');
    expect(e.message).toContain('secretmanager.versions.access');
    expect(e.message).toContain('gcp:locked');
    expect(other.count('access')).toBe(1);
    await p.close();
    await other.close();
  });

  it('an unknown project is SK_ERR_BACKEND_DENIED that says a missing project looks the same (IAM comes first)', async () => {
    const p = metadataProvider(emu);
    const e = await skErr(p.fetch(parseRef('gcp:projects/no-such-project/secrets/db'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_DENIED');
    expect(e.message).toContain('gcp versions.access projects/no-such-project/secrets/db/versions/latest');
    expect(e.message).toContain('does not exist');
    await p.close();
  });

  it('auth: adc without a credentials file is SK_ERR_BACKEND_CONFIG naming the setting', async () => {
    const p = new GcpProvider(
      { project: emu.projectId, endpoint: emu.url, auth: 'adc' },
      { env: { HOME: dir }, retry: fast },
    );
    const e = await skErr(p.fetch(parseRef('gcp:x'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_CONFIG');
    expect(e.message).toMatch(/^gcp:x: backends\.gcp\.auth: adc, but no credentials file/);
    await p.close();
  });

  it('5xx and network resets are retried with backoff, then SK_ERR_BACKEND_UNAVAILABLE after 4 attempts', async () => {
    emu.addVersion('flaky', 'ok');
    const p = metadataProvider(emu);
    await p.fetch(parseRef('gcp:flaky'), ctx); // token in hand
    const before = emu.count('access');
    emu.fault('access', 'unavailable', 1);
    emu.fault('access', 'reset', 1);
    emu.fault('access', 'internal', 1);
    expect(text((await p.fetch(parseRef('gcp:flaky'), ctx)).value)).toBe('ok');
    expect(emu.count('access') - before).toBe(4);
    emu.fault('access', 'unavailable', 10);
    const e = await skErr(p.fetch(parseRef('gcp:flaky'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toContain('after 4 attempts');
    expect(emu.count('access') - before).toBe(8);
    emu.clearFaults();
    await p.close();
  });

  it('429 honours Retry-After and RetryInfo (bounded); a longer wait is not slept on', async () => {
    emu.addVersion('busy', 'ok');
    const p = metadataProvider(emu);
    await p.fetch(parseRef('gcp:busy'), ctx);
    const start = emu.log.length;
    emu.fault('access', 'throttled', 1, { retryAfter: '1' });
    emu.fault('access', 'throttled', 1, { retryDelay: '0.6s' });
    expect(text((await p.fetch(parseRef('gcp:busy'), ctx)).value)).toBe('ok');
    const at = emu.log
      .slice(start)
      .filter((l) => l.route === 'access')
      .map((l) => l.at);
    expect(at).toHaveLength(3);
    // the client waited as told (the backoff alone would be ≤ 20 ms and 40 ms)
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(950);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(550);

    emu.fault('access', 'throttled', 1, { retryAfter: '120' });
    const n = emu.count('access');
    const e = await skErr(p.fetch(parseRef('gcp:busy'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toContain('throttled');
    expect(emu.count('access') - n).toBe(1);

    emu.fault('access', 'throttled', 10);
    const t = await skErr(p.fetch(parseRef('gcp:busy'), ctx));
    expect(t.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(t.message).toContain('throttled (429 RESOURCE_EXHAUSTED) after 4 attempts');
    emu.clearFaults();
    await p.close();
  });

  it('a garbage answer and a wrong CRC32C are SK_ERR_BACKEND_RESPONSE without the payload', async () => {
    emu.addVersion('garbled', CANARY);
    const p = metadataProvider(emu);
    emu.fault('access', 'garbage', 1);
    const g = await skErr(p.fetch(parseRef('gcp:garbled'), ctx));
    expect(g.code).toBe('SK_ERR_BACKEND_RESPONSE');
    expect(g.message).toContain('not JSON');
    emu.fault('access', 'badcrc', 1);
    const c = await skErr(p.fetch(parseRef('gcp:garbled'), ctx));
    expect(c.code).toBe('SK_ERR_BACKEND_RESPONSE');
    expect(c.message).toContain('CRC32C');
    expect(text((await p.fetch(parseRef('gcp:garbled'), ctx)).value)).toBe(CANARY);
    await p.close();
  });

  it('a revoked token (401) is replaced once and the read retried', async () => {
    emu.addVersion('reauth', 'ok');
    const p = metadataProvider(emu);
    await p.fetch(parseRef('gcp:reauth'), ctx);
    emu.revokeTokens();
    expect(text((await p.fetch(parseRef('gcp:reauth'), ctx)).value)).toBe('ok');
    expect(p.tokensFetched).toBe(2);
    emu.fault('access', 'unauthenticated', 2);
    const e = await skErr(p.fetch(parseRef('gcp:reauth'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_AUTH');
    await p.close();
  });

  it('the token is refreshed before it expires (a third of its life left), without a 401', async () => {
    const short = await startGcpEmulator({ metadataServiceAccount: GSA, tokenLifetimeSec: 6 });
    short.grant(`serviceAccount:${GSA}`, '*');
    short.addVersion('ttl', 'ok');
    const p = metadataProvider(short);
    await p.fetch(parseRef('gcp:ttl'), ctx);
    await p.fetch(parseRef('gcp:ttl'), ctx);
    expect(p.tokensFetched).toBe(1);
    await new Promise((r) => setTimeout(r, 4500)); // < 2 s (a third) of the 6 s left
    await p.fetch(parseRef('gcp:ttl'), ctx);
    expect(p.tokensFetched).toBe(2);
    expect(short.log.filter((l) => l.route === 'access').length).toBe(3); // no 401 and retry
    await p.close();
    await short.close();
  });

  it('short refs take the project from the metadata server when no setting names one', async () => {
    emu.addVersion('short', 'ok');
    const p = new GcpProvider({ endpoint: emu.url, metadataHost: emu.host }, { env: {}, retry: fast });
    expect(text((await p.fetch(parseRef('gcp:short'), ctx)).value)).toBe('ok');
    await p.close();
  });

  it('metadata server without a bound service account: SK_ERR_BACKEND_AUTH saying so', async () => {
    const bare = await startGcpEmulator();
    const p = metadataProvider(bare);
    const e = await skErr(p.fetch(parseRef('gcp:x'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_AUTH');
    expect(e.message).toContain('gcp:x');
    expect(e.message).toContain('no service account');
    await p.close();
    await bare.close();
  });

  it('an unreachable endpoint is SK_ERR_BACKEND_UNAVAILABLE naming the call', async () => {
    const port = await freePort();
    const p = metadataProvider(emu, { endpoint: `http://127.0.0.1:${port}` });
    const e = await skErr(p.fetch(parseRef('gcp:anything'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toContain('ECONNREFUSED');
    expect(e.message).toContain('versions.access');
    await p.close();
  });

  describe('Workload Identity Federation (STS) and impersonation', () => {
    const SUB = 'system:serviceaccount:shop:api';
    const fed = (extra: Record<string, unknown>) =>
      new GcpProvider(
        {
          project: emu.projectId,
          endpoint: emu.url,
          stsEndpoint: emu.url,
          iamCredentialsEndpoint: emu.url,
          ...extra,
        },
        { env: {}, retry: fast },
      );

    it('exchanges the projected token at STS once and reads with the federated identity', async () => {
      const tokenFile = path.join(dir, 'fed-token');
      writeFileSync(tokenFile, emu.mintK8sToken({ sub: SUB }));
      emu.addVersion('fed', `f-${CANARY}`);
      emu.grant(emu.federatedPrincipal(SUB), 'fed');
      const sts = emu.count('sts');
      const p = fed({ audience: emu.providerName, tokenFile });
      expect(text((await p.fetch(parseRef('gcp:fed'), ctx)).value)).toBe(`f-${CANARY}`);
      expect(text((await p.fetch(parseRef('gcp:fed'), ctx)).value)).toBe(`f-${CANARY}`);
      expect(emu.count('sts') - sts).toBe(1);
      expect(emu.log.at(-1)!.principal).toBe(emu.federatedPrincipal(SUB));
      // a secret not granted to it
      emu.addVersion('fed-other', CANARY);
      expect((await skErr(p.fetch(parseRef('gcp:fed-other'), ctx))).code).toBe('SK_ERR_BACKEND_DENIED');
      await p.close();
    });

    it('re-reads the projected token file at each exchange (the kubelet rotates it)', async () => {
      const tokenFile = path.join(dir, 'rotating');
      writeFileSync(tokenFile, emu.mintK8sToken({ sub: SUB }));
      emu.addVersion('rotating', 'ok');
      emu.grant(emu.federatedPrincipal(SUB), 'rotating');
      emu.grant(emu.federatedPrincipal('system:serviceaccount:shop:next'), 'rotating');
      const p = fed({ audience: emu.providerName, tokenFile });
      await p.fetch(parseRef('gcp:rotating'), ctx);
      expect(emu.log.at(-1)!.principal).toBe(emu.federatedPrincipal(SUB));
      writeFileSync(tokenFile, emu.mintK8sToken({ sub: 'system:serviceaccount:shop:next' }));
      emu.revokeTokens(); // the next read gets 401, and a new exchange reads the new file
      await p.fetch(parseRef('gcp:rotating'), ctx);
      expect(emu.log.at(-1)!.principal).toBe(emu.federatedPrincipal('system:serviceaccount:shop:next'));
      await p.close();
    });

    it('impersonates the Google service account when serviceAccount is set', async () => {
      const tokenFile = path.join(dir, 'imp-token');
      writeFileSync(tokenFile, emu.mintK8sToken({ sub: SUB }));
      const sa = 'reader@sk-emulated.iam.gserviceaccount.com';
      emu.addVersion('imp', 'ok');
      emu.grant(`serviceAccount:${sa}`, 'imp');
      const p = fed({ audience: emu.providerName, tokenFile, serviceAccount: sa });
      const denied = await skErr(p.fetch(parseRef('gcp:imp'), ctx));
      expect(denied.code).toBe('SK_ERR_BACKEND_DENIED');
      expect(denied.message).toContain(`generateAccessToken for ${sa}`);
      emu.allowImpersonation(sa, emu.federatedPrincipal(SUB));
      expect(text((await p.fetch(parseRef('gcp:imp'), ctx)).value)).toBe('ok');
      expect(emu.log.at(-1)!.principal).toBe(`serviceAccount:${sa}`);
      await p.close();
    });

    it('bad input: a token for another audience, a missing token file, a wrong pool provider', async () => {
      const wrongAud = path.join(dir, 'wrong-aud');
      writeFileSync(wrongAud, emu.mintK8sToken({ sub: SUB, aud: 'vault' }));
      const a = await skErr(
        fed({ audience: emu.providerName, tokenFile: wrongAud }).fetch(parseRef('gcp:fed'), ctx),
      );
      expect(a.code).toBe('SK_ERR_BACKEND_AUTH');
      expect(a.message).toMatch(
        /^gcp:fed: gcp STS token exchange \(POST http:\/\/127\.0\.0\.1:\d+\/v1\/token\): refused \(invalid_grant\)/,
      );

      const missing = path.join(dir, 'nope');
      const m = await skErr(
        fed({ audience: emu.providerName, tokenFile: missing }).fetch(parseRef('gcp:fed'), ctx),
      );
      expect(m.code).toBe('SK_ERR_BACKEND_CONFIG');
      expect(m.message).toContain(`backends.gcp.tokenFile ${missing} does not exist`);

      const good = path.join(dir, 'good');
      writeFileSync(good, emu.mintK8sToken({ sub: SUB }));
      const w = await skErr(
        fed({ audience: `${emu.providerName}-typo`, tokenFile: good }).fetch(parseRef('gcp:fed'), ctx),
      );
      expect(w.code).toBe('SK_ERR_BACKEND_AUTH');
      expect(w.message).toContain('invalid_target');
      expect(w.message).toContain('backends.gcp.audience');
      // the token never appears in an error
      expect(w.message).not.toContain('eyJ'); // no JWT
    });

    it('a denied STS exchange (injected) is SK_ERR_BACKEND_AUTH; STS 503 is retried', async () => {
      const tokenFile = path.join(dir, 'sts-faults');
      writeFileSync(tokenFile, emu.mintK8sToken({ sub: SUB }));
      emu.fault('sts', 'denied', 1);
      const p = fed({ audience: emu.providerName, tokenFile });
      expect((await skErr(p.fetch(parseRef('gcp:fed'), ctx))).code).toBe('SK_ERR_BACKEND_AUTH');
      emu.fault('sts', 'unavailable', 2);
      expect(text((await p.fetch(parseRef('gcp:fed'), ctx)).value)).toBe(`f-${CANARY}`);
      await p.close();
    });
  });

  describe('Application Default Credentials files', () => {
    const adc = (file: string) =>
      new GcpProvider(
        { project: emu.projectId, endpoint: emu.url, stsEndpoint: emu.url, iamCredentialsEndpoint: emu.url },
        {
          env: { GOOGLE_APPLICATION_CREDENTIALS: file },
          retry: fast,
        },
      );

    it('authorized_user (gcloud auth application-default login)', async () => {
      const file = path.join(dir, 'user.json');
      writeFileSync(
        file,
        JSON.stringify({
          type: 'authorized_user',
          client_id: 'cid.apps.googleusercontent.com',
          client_secret: 'shh',
          refresh_token: emu.addRefreshToken('user:dev@example.com'),
          token_uri: `${emu.url}/token`,
        }),
      );
      emu.addVersion('adc-user', 'ok');
      emu.grant('user:dev@example.com', 'adc-user');
      const p = adc(file);
      expect(text((await p.fetch(parseRef('gcp:adc-user'), ctx)).value)).toBe('ok');
      expect(emu.log.at(-1)!.principal).toBe('user:dev@example.com');
      await p.close();
    });

    it('service_account key (RS256 JWT assertion)', async () => {
      const email = 'ci@sk-emulated.iam.gserviceaccount.com';
      const file = path.join(dir, 'key.json');
      writeFileSync(
        file,
        JSON.stringify({
          type: 'service_account',
          project_id: emu.projectId,
          client_email: email,
          private_key: emu.addServiceAccountKey(email),
          token_uri: `${emu.url}/token`,
        }),
      );
      emu.addVersion('adc-key', 'ok');
      emu.grant(`serviceAccount:${email}`, 'adc-key');
      const p = adc(file);
      expect(text((await p.fetch(parseRef('gcp:adc-key'), ctx)).value)).toBe('ok');
      await p.close();
    });

    it('external_account (a federation credential configuration file with impersonation)', async () => {
      const tokenFile = path.join(dir, 'ext-token');
      const SUB = 'system:serviceaccount:ci:runner';
      writeFileSync(tokenFile, emu.mintK8sToken({ sub: SUB }));
      const sa = 'ext@sk-emulated.iam.gserviceaccount.com';
      emu.allowImpersonation(sa, emu.federatedPrincipal(SUB));
      emu.addVersion('adc-ext', 'ok');
      emu.grant(`serviceAccount:${sa}`, 'adc-ext');
      const file = path.join(dir, 'ext.json');
      writeFileSync(
        file,
        JSON.stringify({
          type: 'external_account',
          audience: emu.providerName,
          subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
          token_url: 'https://sts.googleapis.com/v1/token',
          service_account_impersonation_url: `https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/${sa}:generateAccessToken`,
          credential_source: { file: tokenFile },
        }),
      );
      const p = adc(file);
      expect(text((await p.fetch(parseRef('gcp:adc-ext'), ctx)).value)).toBe('ok');
      expect(emu.log.at(-1)!.principal).toBe(`serviceAccount:${sa}`);
      await p.close();
    });

    it('an unusable credentials file is SK_ERR_BACKEND_CONFIG naming it', async () => {
      const file = path.join(dir, 'bad.json');
      writeFileSync(file, JSON.stringify({ type: 'mystery' }));
      const e = await skErr(adc(file).fetch(parseRef('gcp:x'), ctx));
      expect(e.code).toBe('SK_ERR_BACKEND_CONFIG');
      expect(e.message).toContain(file);
      expect(e.message).toContain('GOOGLE_APPLICATION_CREDENTIALS');
    });
  });
});
