import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SkError } from '../../../src/errors.ts';
import { AWS_MAX_ATTEMPTS, AwsProvider } from '../../../src/providers/aws/index.ts';
import { parseRef } from '../../../src/refs.ts';
import { skErr } from '../../helpers/provider.ts';
import { testCtx } from './vault-fixture.ts';

/**
 * The failures moto_server cannot produce (throttling, KMS decryption, expired credentials), from an
 * emulator of the documented Secrets Manager JSON API (`X-Amz-Target: secretsmanager.<Op>`, errors as
 * `{"__type": "<Name>", "message": …}` with their HTTP status), on loopback.
 */

type Reply = { status: number; body: unknown };
let script: (op: string, n: number) => Reply;
const seen: Array<{ op: string; at: number }> = [];
let server: http.Server;
let endpoint: string;
const ctx = testCtx();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume(); // the body is not needed: the operation is in X-Amz-Target
    req.on('end', () => {
      const op = String(req.headers['x-amz-target'] ?? '').replace(/^secretsmanager\./, '');
      seen.push({ op, at: Date.now() });
      const r = script(op, seen.filter((s) => s.op === op).length);
      res.writeHead(r.status, {
        'content-type': 'application/x-amz-json-1.1',
        'x-amzn-requestid': 'req-emulated-1234',
      });
      res.end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server?.close();
});

const ok: Reply = {
  status: 200,
  body: {
    ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf',
    Name: 'app',
    VersionId: '11111111-2222-3333-4444-555555555555',
    SecretString: 'value',
    VersionStages: ['AWSCURRENT'],
    CreatedDate: 1_700_000_000,
  },
};
const error = (status: number, type: string): Reply => ({
  status,
  body: { __type: type, message: `emulated ${type}` },
});

function provider(): AwsProvider {
  return new AwsProvider(
    { region: 'us-east-1', endpoint },
    { clientConfig: { credentials: { accessKeyId: 'test', secretAccessKey: 'test' } } },
  );
}

describe('aws provider failure paths (Secrets Manager API emulator)', () => {
  it('ThrottlingException is retried with backoff and then succeeds', async () => {
    seen.length = 0;
    script = (_op, n) => (n <= 2 ? error(400, 'ThrottlingException') : ok);
    const p = provider();
    const r = await p.fetch(parseRef('aws:app'), ctx);
    expect(r.version).toBe('11111111-2222-3333-4444-555555555555');
    expect(seen).toHaveLength(3);
    // backoff between attempts (the SDK's standard mode: jittered, so only "not immediate")
    expect(seen[2]!.at - seen[0]!.at).toBeGreaterThan(0);
    expect(p.stats.requests).toBe(3);
    await p.close();
  });

  it('persistent throttling: bounded attempts, then SK_ERR_BACKEND_UNAVAILABLE', async () => {
    seen.length = 0;
    script = () => error(400, 'ThrottlingException');
    const p = provider();
    const e = await skErr(p.fetch(parseRef('aws:app'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toContain('throttled');
    expect(seen).toHaveLength(AWS_MAX_ATTEMPTS);
    // the message counts the attempts that were sent, no more, no fewer
    expect(e.message).toContain(`on ${AWS_MAX_ATTEMPTS} attempts`);
    expect(e.message).not.toContain('req-emulated');
    await p.close();
  });

  it('a short deadline: no attempt that could not finish in time, and the message says how many were sent', async () => {
    seen.length = 0;
    script = () => error(400, 'ThrottlingException');
    const p = new AwsProvider(
      { region: 'us-east-1', endpoint },
      {
        clientConfig: { credentials: { accessKeyId: 'test', secretAccessKey: 'test' } },
        retry: { minTimeoutMs: 200, maxTimeoutMs: 2000 },
      },
    );
    const t0 = Date.now();
    const e = await skErr(p.fetch(parseRef('aws:app'), { ...ctx, deadline: t0 + 700 }));
    expect(Date.now() - t0).toBeLessThan(700);
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    // waits of up to 400 ms, then 800 ms: the second retry would not fit
    expect(seen.length).toBeLessThan(AWS_MAX_ATTEMPTS);
    expect(e.message).toContain(`throttled (ThrottlingException) on ${seen.length} attempt`);
    expect(p.stats.requests).toBe(seen.length);
    await p.close();
  });

  it('an answer that never comes is ended by the request timeout or the call signal, not waited for', async () => {
    const hung = http.createServer(() => {});
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', () => r()));
    const p = new AwsProvider(
      { region: 'us-east-1', endpoint: `http://127.0.0.1:${(hung.address() as AddressInfo).port}` },
      { clientConfig: { credentials: { accessKeyId: 'test', secretAccessKey: 'test' } } },
    );
    const warned: string[] = [];
    const t0 = Date.now();
    const abort = new AbortController();
    const e = await skErr(
      p.fetch(parseRef('aws:app'), {
        signal: abort.signal,
        deadline: t0 + 600,
        log: { ...ctx.log, warn: (o, m) => void warned.push(`${m} ${JSON.stringify(o)}`) },
      }),
    );
    // the attempt's timeout is cut to the deadline: ~600 ms, not the SDK's 10 s
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toMatch(/timed out .* on 1 attempt$/);
    await p.close();
    hung.closeAllConnections();
    hung.close();
  });

  it('DecryptionFailure → SK_ERR_BACKEND_DENIED naming kms:Decrypt, not retried', async () => {
    seen.length = 0;
    script = () => error(400, 'DecryptionFailure');
    const p = provider();
    const e = await skErr(p.fetch(parseRef('aws:app#k'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_DENIED');
    expect(e.message).toContain('kms:Decrypt');
    expect(seen).toHaveLength(1);
    await p.close();
  });

  it('ExpiredTokenException → SK_ERR_BACKEND_AUTH; InternalServiceError → retried then UNAVAILABLE', async () => {
    seen.length = 0;
    script = () => error(400, 'ExpiredTokenException');
    const p = provider();
    expect((await skErr(p.fetch(parseRef('aws:app'), ctx))).code).toBe('SK_ERR_BACKEND_AUTH');
    seen.length = 0;
    script = () => error(500, 'InternalServiceError');
    const e = await skErr(p.fetch(parseRef('aws:app'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(seen).toHaveLength(AWS_MAX_ATTEMPTS);
    await p.close();
  });

  it('a batch answer mixing values and per-secret errors maps each secret', async () => {
    seen.length = 0;
    script = (op) =>
      op === 'BatchGetSecretValue'
        ? {
            status: 200,
            body: {
              SecretValues: [
                {
                  ...(ok.body as object),
                  Name: 'a',
                  ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AbCdEf',
                },
              ],
              Errors: [
                { SecretId: 'b', ErrorCode: 'DecryptionFailure', Message: 'x' },
                { SecretId: 'c', ErrorCode: 'ResourceNotFoundException', Message: 'x' },
              ],
            },
          }
        : error(400, 'ResourceNotFoundException');
    const p = provider();
    const out = await p.fetchMany(
      ['aws:a', 'aws:b', 'aws:c'].map((r) => parseRef(r)),
      ctx,
    );
    expect((out[0] as { version: string }).version).toBe('11111111-2222-3333-4444-555555555555');
    expect((out[1] as SkError).code).toBe('SK_ERR_BACKEND_DENIED');
    expect((out[2] as SkError).code).toBe('SK_ERR_SOURCE_NOT_FOUND');
    expect(seen.map((s) => s.op)).toEqual(['BatchGetSecretValue']);
    await p.close();
  });
});
