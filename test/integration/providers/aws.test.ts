import {
  CreateSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSkError, type SkError } from '../../../src/errors.ts';
import {
  AWS_BATCH_MAX,
  AWS_MAX_IN_FLIGHT,
  AwsProvider,
  awsProvider,
  mapAwsError,
} from '../../../src/providers/aws/index.ts';
import { defaultRegistry } from '../../../src/providers/index.ts';
import { selectKey } from '../../../src/providers/select-key.ts';
import type { FetchResult } from '../../../src/providers/types.ts';
import { parseRef } from '../../../src/refs.ts';
import { CANARY } from '../../helpers/cli.ts';
import { skErr, text } from '../../helpers/provider.ts';
import { freePort } from '../servers/common.ts';
import { type Moto, type MotoUser, startMoto } from '../servers/moto.ts';
import { testCtx } from './vault-fixture.ts';

// Real moto_server (the AWS API server from PyPI) on loopback, started by this file.

let moto: Moto;
let admin: SecretsManagerClient;
const ctx = testCtx();
const creds = { accessKeyId: 'test', secretAccessKey: 'test' };

beforeAll(async () => {
  moto = await startMoto();
  admin = new SecretsManagerClient({ endpoint: moto.endpoint, region: 'us-east-1', credentials: creds });
});
afterAll(async () => {
  admin?.destroy();
  await moto?.stop();
  expect(ctx.lines.join('\n')).not.toContain(CANARY);
});

function provider(endpoint = moto.endpoint, c: typeof creds | MotoUser = creds): AwsProvider {
  return new AwsProvider({ region: 'us-east-1', endpoint }, { clientConfig: { credentials: c } });
}

/** POST requests moto logged (each Secrets Manager call is one POST /). */
function motoPosts(m: Moto): number {
  return (m.requestLog().match(/"POST \/ HTTP\/1\.1" /g) ?? []).length;
}

/**
 * The POST count once moto's request log has caught up: moto logs a request after answering it, so
 * on a loaded machine the last lines arrive late. Waits until the count holds still for 300 ms.
 */
async function settledPosts(m: Moto): Promise<number> {
  let last = motoPosts(m);
  for (let stillSince = Date.now(), end = Date.now() + 5_000; Date.now() < end; ) {
    await new Promise((r) => setTimeout(r, 50));
    const now = motoPosts(m);
    if (now !== last) [last, stillSince] = [now, Date.now()];
    else if (Date.now() - stillSince >= 300) break;
  }
  return last;
}

describe('aws provider against a real moto_server', () => {
  it('is registered and validates refs without I/O', () => {
    const r = defaultRegistry();
    expect(r.has('aws')).toBe(true);
    for (const ok of [
      'aws:prod/app/db#password',
      'aws:arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/app/db-AbCdEf',
      'aws:prod/app/db?stage=AWSPREVIOUS',
      'aws:prod/app/db?version=01234567-89ab-cdef-0123-456789abcdef',
    ]) {
      expect(() => r.validateRef(parseRef(ok), 'x')).not.toThrow();
    }
    for (const bad of ['aws:has space', 'aws:arn:aws:s3:::bucket', 'aws:x?foo=1', 'aws:x?version=short']) {
      expect(() => r.validateRef(parseRef(bad), 'where')).toThrow(/where/);
    }
  });

  it('reads a JSON SecretString as bytes (#key selects into it) with VersionId as version', async () => {
    const created = await admin.send(
      new CreateSecretCommand({
        Name: 'prod/app/db',
        SecretString: JSON.stringify({ username: 'app', password: CANARY }),
      }),
    );
    const p = provider();
    const ref = parseRef('aws:prod/app/db#password');
    const r = await p.fetch(ref, ctx);
    expect(r.version).toBe(created.VersionId);
    expect(text(selectKey(r.value, ref))).toBe(CANARY);
    // by ARN too
    const byArn = await p.fetch(parseRef(`aws:${created.ARN}`), ctx);
    expect(byArn.version).toBe(created.VersionId);
    await p.close();
  });

  it('rotation: a new AWSCURRENT changes value and version; ?stage=AWSPREVIOUS and ?version= select older ones', async () => {
    const first = await admin.send(new CreateSecretCommand({ Name: 'rot/api-key', SecretString: 'key-1' }));
    const p = provider();
    const a = await p.fetch(parseRef('aws:rot/api-key'), ctx);
    const again = await p.fetch(parseRef('aws:rot/api-key'), ctx);
    expect(again.version).toBe(a.version); // unchanged → same version → nothing rewritten
    const second = await admin.send(
      new PutSecretValueCommand({ SecretId: 'rot/api-key', SecretString: `key-2-${CANARY}` }),
    );
    const b = await p.fetch(parseRef('aws:rot/api-key'), ctx);
    expect(text(b.value)).toBe(`key-2-${CANARY}`);
    expect(b.version).toBe(second.VersionId);
    expect(b.version).not.toBe(a.version);
    const prev = await p.fetch(parseRef('aws:rot/api-key?stage=AWSPREVIOUS'), ctx);
    expect(text(prev.value)).toBe('key-1');
    const byId = await p.fetch(parseRef(`aws:rot/api-key?version=${first.VersionId}`), ctx);
    expect(text(byId.value)).toBe('key-1');
    expect(byId.version).toBe(first.VersionId);
    await p.close();
  });

  it('reads a SecretBinary as exact bytes', async () => {
    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 10, 13]);
    await admin.send(new CreateSecretCommand({ Name: 'bin/keystore', SecretBinary: bytes }));
    const p = provider();
    const r = await p.fetch(parseRef('aws:bin/keystore'), ctx);
    expect(r.value.kind).toBe('bytes');
    expect(r.value.kind === 'bytes' && r.value.bytes.equals(bytes)).toBe(true);
    await p.close();
  });

  it('a missing secret is SK_ERR_SOURCE_NOT_FOUND naming the ref and the call', async () => {
    const p = provider();
    const e = await skErr(p.fetch(parseRef('aws:does/not/exist#k'), ctx));
    expect(e.code).toBe('SK_ERR_SOURCE_NOT_FOUND');
    expect(e.message).toContain('aws:does/not/exist#k');
    expect(e.message).toContain('GetSecretValue');
    await p.close();
  });

  it('fetchMany: 45 secrets in ceil(45/20) = 3 BatchGetSecretValue calls, per-secret errors mapped, in order', async () => {
    const n = 45;
    for (let i = 0; i < n; i++) {
      await admin.send(
        new CreateSecretCommand({ Name: `batch/s${i}`, SecretString: JSON.stringify({ i, v: CANARY }) }),
      );
    }
    const p = provider();
    const refs = [
      ...Array.from({ length: n }, (_, i) => parseRef(`aws:batch/s${i}#i`)),
      parseRef('aws:batch/missing'),
      parseRef('aws:batch/s0#v'), // same secret twice: one id in the batch
    ];
    const postsBefore = await settledPosts(moto);
    const out = await p.fetchMany(refs, ctx);
    expect(out).toHaveLength(refs.length);
    for (let i = 0; i < n; i++) {
      const r = out[i] as FetchResult;
      expect(isSkError(r)).toBe(false);
      expect(text(selectKey(r.value, refs[i]!))).toBe(String(i));
    }
    expect((out[n] as SkError).code).toBe('SK_ERR_SOURCE_NOT_FOUND');
    expect((out[n] as SkError).message).toContain('aws:batch/missing');
    expect(text(selectKey((out[n + 1] as FetchResult).value, refs[n + 1]!))).toBe(CANARY);
    const calls = Math.ceil((n + 1) / AWS_BATCH_MAX);
    expect(p.stats.byOperation).toEqual({ BatchGetSecretValue: calls });
    // and moto itself saw exactly that many requests
    expect((await settledPosts(moto)) - postsBefore).toBe(calls);
    await p.close();
  });

  it('fetchMany: refs with ?stage=/?version= are read one by one, the rest batched', async () => {
    const p = provider();
    const refs = ['aws:batch/s1', 'aws:batch/s2', 'aws:rot/api-key?stage=AWSPREVIOUS'].map((r) =>
      parseRef(r),
    );
    const out = await p.fetchMany(refs, ctx);
    expect(out.every((r) => !isSkError(r))).toBe(true);
    expect(text((out[2] as FetchResult).value)).toBe('key-1');
    expect(p.stats.byOperation).toEqual({ BatchGetSecretValue: 1, GetSecretValue: 1 });
    await p.close();
  });

  it('fetchMany of 30 refs read one by one (?stage=) keeps at most a few calls in flight', async () => {
    const p = provider();
    const refs = Array.from({ length: 30 }, (_, i) => parseRef(`aws:batch/s${i}?stage=AWSCURRENT#i`));
    const out = await p.fetchMany(refs, ctx);
    out.forEach((r, i) => {
      expect(isSkError(r)).toBe(false);
      expect(text(selectKey((r as FetchResult).value, refs[i]!))).toBe(String(i));
    });
    expect(p.stats.byOperation).toEqual({ GetSecretValue: 30 });
    expect(p.peakInFlight).toBeGreaterThan(1);
    expect(p.peakInFlight).toBeLessThanOrEqual(AWS_MAX_IN_FLIGHT);
    await p.close();
  });

  it('an unreachable endpoint is SK_ERR_BACKEND_UNAVAILABLE', async () => {
    const p = provider(`http://127.0.0.1:${await freePort()}`);
    const e = await skErr(p.fetch(parseRef('aws:prod/app/db'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    await p.close();
  });

  it('maps SDK errors by name (throttling, decryption, credentials) — SDK-error level', () => {
    const ref = parseRef('aws:prod/app/db');
    const cases: Array<[unknown, string, RegExp]> = [
      [
        { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } },
        'SK_ERR_BACKEND_UNAVAILABLE',
        /throttled/,
      ],
      [{ name: 'DecryptionFailure' }, 'SK_ERR_BACKEND_DENIED', /kms:Decrypt/],
      [{ name: 'CredentialsProviderError' }, 'SK_ERR_BACKEND_AUTH', /credentials/],
      [{ name: 'ExpiredTokenException' }, 'SK_ERR_BACKEND_AUTH', /ExpiredTokenException/],
      [
        { name: 'InternalServiceError', $metadata: { httpStatusCode: 500 } },
        'SK_ERR_BACKEND_UNAVAILABLE',
        /500/,
      ],
    ];
    for (const [err, code, re] of cases) {
      const e = mapAwsError(err, 'GetSecretValue', ref);
      expect(e.code).toBe(code);
      expect(e.message).toMatch(re);
      expect(e.message).toContain('aws:prod/app/db');
    }
  });
});

describe('aws provider against moto_server enforcing IAM', () => {
  let iam: Moto & { users: Record<string, MotoUser> };
  beforeAll(async () => {
    iam = await startMoto({
      iamUsers: {
        admin: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] },
        // may read secrets one by one, but was not granted BatchGetSecretValue
        reader: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: '*' }],
        },
        nobody: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'secretsmanager:ListSecrets', Resource: '*' }],
        },
      },
    });
    const a = new SecretsManagerClient({
      endpoint: iam.endpoint,
      region: 'us-east-1',
      credentials: iam.users.admin!,
    });
    for (const name of ['iam/a', 'iam/b', 'iam/c']) {
      await a.send(new CreateSecretCommand({ Name: name, SecretString: `${name}-${CANARY}` }));
    }
    a.destroy();
  });
  afterAll(async () => {
    await iam?.stop();
  });

  it('AccessDenied is SK_ERR_BACKEND_DENIED naming the IAM action', async () => {
    const p = provider(iam.endpoint, iam.users.nobody!);
    const e = await skErr(p.fetch(parseRef('aws:iam/a'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_DENIED');
    expect(e.message).toContain('secretsmanager:GetSecretValue');
    expect(e.message).not.toContain(CANARY);
    await p.close();
  });

  it('a policy without BatchGetSecretValue: fetchMany falls back to one-by-one reads, once', async () => {
    const p = provider(iam.endpoint, iam.users.reader!);
    const refs = ['aws:iam/a', 'aws:iam/b', 'aws:iam/c'].map((r) => parseRef(r));
    const out = await p.fetchMany(refs, ctx);
    expect(out.map((r) => (isSkError(r) ? r.code : text(r.value)))).toEqual(
      ['iam/a', 'iam/b', 'iam/c'].map((n) => `${n}-${CANARY}`),
    );
    expect(p.stats.byOperation).toEqual({ BatchGetSecretValue: 1, GetSecretValue: 3 });
    // the next refresh does not try the batch again
    await p.fetchMany(refs, ctx);
    expect(p.stats.byOperation).toEqual({ BatchGetSecretValue: 1, GetSecretValue: 6 });
    await p.close();
  });

  it('a policy without BatchGetSecretValue: more than one batch of secrets asks for a batch only once', async () => {
    const a = new SecretsManagerClient({
      endpoint: iam.endpoint,
      region: 'us-east-1',
      credentials: iam.users.admin!,
    });
    const names = Array.from({ length: 25 }, (_, i) => `iam/many/${i}`);
    for (const name of names) await a.send(new CreateSecretCommand({ Name: name, SecretString: name }));
    a.destroy();
    const p = provider(iam.endpoint, iam.users.reader!);
    const out = await p.fetchMany(
      names.map((n) => parseRef(`aws:${n}`)),
      ctx,
    );
    expect(out.map((r) => (isSkError(r) ? r.code : text(r.value)))).toEqual(names);
    expect(p.stats.byOperation).toEqual({ BatchGetSecretValue: 1, GetSecretValue: 25 });
    await p.close();
  });

  it('unknown access keys are SK_ERR_BACKEND_AUTH', async () => {
    const p = provider(iam.endpoint, { accessKeyId: 'AKIAUNKNOWNUNKNOWN00', secretAccessKey: 'nope' });
    const e = await skErr(p.fetch(parseRef('aws:iam/a'), ctx));
    expect(['SK_ERR_BACKEND_AUTH', 'SK_ERR_BACKEND_DENIED']).toContain(e.code);
    expect(e.message).not.toContain('nope');
    await p.close();
  });
});

describe('aws provider factory', () => {
  it('honours AWS_ENDPOINT_URL when no endpoint is set', async () => {
    const p = new AwsProvider(
      { region: 'us-east-1' },
      { env: { AWS_ENDPOINT_URL: moto.endpoint }, clientConfig: { credentials: creds } },
    );
    const r = await p.fetch(parseRef('aws:prod/app/db'), ctx);
    expect(r.version).toMatch(/\S/);
    await p.close();
    expect(awsProvider.name).toBe('aws');
  });
});
