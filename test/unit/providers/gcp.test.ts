import { describe, expect, it } from 'vitest';
import { isSkError, type SkError } from '../../../src/errors.ts';
import { crc32c } from '../../../src/providers/gcp/crc32c.ts';
import { GcpProvider, gcpProvider } from '../../../src/providers/gcp/index.ts';
import { parseGcpRef } from '../../../src/providers/gcp/ref.ts';
import { retryAfterMs } from '../../../src/providers/gcp/retry.ts';
import { parseRef } from '../../../src/refs.ts';
import { CANARY } from './contract.ts';

function syntaxErr(raw: string): SkError {
  try {
    gcpProvider.validateRef(parseRef(raw), 'secrets.x.ref');
  } catch (e) {
    if (isSkError(e)) return e;
    throw e;
  }
  throw new Error(`accepted: ${raw}`);
}

describe('gcp: refs', () => {
  it('parses the full and the short form, latest by default', () => {
    const p = (raw: string) => parseGcpRef(parseRef(raw), 'x');
    expect(p('gcp:projects/my-proj/secrets/db')).toEqual({
      project: 'my-proj',
      secret: 'db',
      version: 'latest',
    });
    expect(p('gcp:projects/123456789012/secrets/db_pw-2/versions/7#password')).toEqual({
      project: '123456789012',
      secret: 'db_pw-2',
      version: '7',
    });
    expect(p('gcp:projects/example.com:proj-a/secrets/x/versions/latest')).toEqual({
      project: 'example.com:proj-a',
      secret: 'x',
      version: 'latest',
    });
    expect(p('gcp:api-key')).toEqual({ project: undefined, secret: 'api-key', version: 'latest' });
    expect(p('gcp:api-key/versions/3')).toEqual({ project: undefined, secret: 'api-key', version: '3' });
  });

  it('refuses malformed refs with SK_ERR_REF_SYNTAX naming where, never quoting the ref', () => {
    for (const bad of [
      'gcp:projects/p/secrets',
      'gcp:projects/p/secrets/a/b',
      'gcp:projects/p/secrets/a/versions/0',
      'gcp:projects/p/secrets/a/versions/first',
      'gcp:projects/Bad_Project/secrets/a',
      'gcp:projects/p/locations/eu/secrets/a',
      'gcp:has space',
      'gcp:a.b',
      'gcp:db?version=3',
      `gcp:${CANARY}.x`,
      `gcp:${'a'.repeat(256)}`,
    ]) {
      const e = syntaxErr(bad);
      expect(e.code).toBe('SK_ERR_REF_SYNTAX');
      expect(e.message.startsWith('secrets.x.ref: the ref ')).toBe(true);
      expect(e.message).not.toContain(bad.slice(4));
      expect(e.message).not.toContain(CANARY);
    }
    expect(syntaxErr('gcp:projects/p/locations/eu/secrets/a').message).toContain('regional');
    expect(syntaxErr('gcp:db?version=3').message).toContain('has an option;');
  });
});

describe('CRC32C', () => {
  // RFC 3720 (iSCSI), appendix B.4, and the common check value.
  it('matches the published test vectors', () => {
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });
});

describe('Retry-After', () => {
  const answer = (headers: Record<string, string>, body = '') => ({
    status: 429,
    headers,
    body: Buffer.from(body),
  });
  it('reads seconds, an HTTP date and a google.rpc.RetryInfo detail', () => {
    expect(retryAfterMs(answer({ 'retry-after': '3' }))).toBe(3000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs(answer({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }), now)).toBe(5000);
    const body = JSON.stringify({
      error: {
        code: 429,
        details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '1.5s' }],
      },
    });
    expect(retryAfterMs(answer({}, body))).toBe(1500);
    expect(retryAfterMs(answer({}, 'not json'))).toBeUndefined();
  });
});

describe('gcp settings', () => {
  const cfgErr = (settings: unknown): SkError => {
    try {
      new GcpProvider(settings, { env: {} });
    } catch (e) {
      if (isSkError(e)) return e;
      throw e;
    }
    throw new Error('accepted');
  };
  it('names the setting that is wrong', () => {
    expect(cfgErr({ endpoint: 'not a url' }).message).toBe('backends.gcp.endpoint: not a URL');
    expect(cfgErr({ stsEndpoint: 'ftp://x' }).where).toBe('backends.gcp.stsEndpoint');
    expect(cfgErr({ serviceAccount: 'nobody' }).where).toBe('backends.gcp.serviceAccount');
    const fed = cfgErr({ auth: 'federation' });
    expect(fed.code).toBe('SK_ERR_BACKEND_CONFIG');
    expect(fed.message).toContain('backends.gcp.audience: required for federation');
    expect(cfgErr({ unknownField: 1 }).code).toBe('SK_ERR_BACKEND_CONFIG');
    expect(cfgErr({ auth: 'kerberos' }).where).toBe('backends.gcp.auth');
  });
});
