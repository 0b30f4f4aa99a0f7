import { describe, expect, it } from 'vitest';
import { SkError } from '../../../src/errors.ts';
import { AwsProvider, awsProvider, mapAwsError } from '../../../src/providers/aws/index.ts';
import { parseRef } from '../../../src/refs.ts';

const validate = (raw: string) => awsProvider.validateRef(parseRef(raw), 'secrets.x.ref');

describe('aws: validateRef (syntax only)', () => {
  it('accepts names, full and partial ARNs, ?stage= and ?version=', () => {
    for (const r of [
      'aws:prod/app/db#password',
      'aws:my_secret+v=1.2@x-y',
      'aws:arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/app/db-AbCdEf',
      'aws:arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:prod/app/db',
      'aws:prod/app/db?stage=AWSPREVIOUS',
      'aws:prod/app/db?version=01234567-89ab-cdef-0123-456789abcdef#k',
    ]) {
      expect(() => validate(r), r).not.toThrow();
    }
  });

  it('refuses bad names, other services ARNs, unknown options, naming where', () => {
    for (const r of [
      'aws:has space',
      'aws:arn:aws:s3:::bucket',
      'aws:arn:aws:secretsmanager:eu-west-1:12:secret:x',
      'aws:x?foo=bar',
      'aws:x?version=nope',
      'aws:x?stage=has space',
    ]) {
      let err: unknown;
      try {
        validate(r);
      } catch (e) {
        err = e;
      }
      expect(err, r).toBeInstanceOf(SkError);
      expect((err as SkError).code).toBe('SK_ERR_REF_SYNTAX');
      expect((err as SkError).message).toContain('secrets.x.ref');
    }
  });

  it('refuses an endpoint that is not a URL', () => {
    expect(() => new AwsProvider({ endpoint: 'not a url' }, { env: {} })).toThrow(/backends\.aws\.endpoint/);
  });
});

describe('aws: error mapping (SDK error names → SK_ERR codes)', () => {
  const ref = parseRef('aws:prod/app/db#password');
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ name: 'ResourceNotFoundException' }, 'SK_ERR_SOURCE_NOT_FOUND'],
    [{ name: 'AccessDeniedException' }, 'SK_ERR_BACKEND_DENIED'],
    [{ name: 'SyntaxError', $metadata: { httpStatusCode: 403 } }, 'SK_ERR_BACKEND_DENIED'],
    [{ name: 'DecryptionFailure' }, 'SK_ERR_BACKEND_DENIED'],
    [{ name: 'UnrecognizedClientException' }, 'SK_ERR_BACKEND_AUTH'],
    [{ name: 'CredentialsProviderError' }, 'SK_ERR_BACKEND_AUTH'],
    [{ name: 'ThrottlingException' }, 'SK_ERR_BACKEND_UNAVAILABLE'],
    [{ name: 'InternalServiceError' }, 'SK_ERR_BACKEND_UNAVAILABLE'],
    [{ name: 'ECONNREFUSED' }, 'SK_ERR_BACKEND_UNAVAILABLE'],
    [{ name: 'InvalidRequestException' }, 'SK_ERR_SOURCE_UNREADABLE'],
    [{ name: 'Error', message: 'Region is missing' }, 'SK_ERR_BACKEND_CONFIG'],
    [{ name: 'SomethingNew' }, 'SK_ERR_BACKEND_RESPONSE'],
  ];
  for (const [err, code] of cases) {
    it(`${String(err.name)} → ${code}`, () => {
      const e = mapAwsError(err, 'GetSecretValue', ref);
      expect(e.code).toBe(code);
      expect(e.message).toContain('aws:prod/app/db#password');
      expect(e.message).toContain('GetSecretValue');
    });
  }

  it('AccessDenied names the IAM action; no request id ever', () => {
    const e = mapAwsError(
      { name: 'AccessDeniedException', message: 'denied', $metadata: { requestId: 'req-123abc' } },
      'BatchGetSecretValue',
      ref,
    );
    expect(e.message).toContain('secretsmanager:BatchGetSecretValue');
    expect(e.message).not.toContain('req-123abc');
  });
});
