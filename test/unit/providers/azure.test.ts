import { describe, expect, it } from 'vitest';
import { isSkError } from '../../../src/errors.ts';
import { type HttpResponse, retryAfterMs } from '../../../src/providers/azure/http.ts';
import { parseChallenge } from '../../../src/providers/azure/keyvault.ts';
import { parseAzureLocator } from '../../../src/providers/azure/ref.ts';
import { parseRef } from '../../../src/refs.ts';

const loc = (raw: string) => parseAzureLocator(parseRef(raw), 'secrets.db');

describe('azure: ref syntax', () => {
  it('parses the vault-name form, with a version, and the full URL form', () => {
    expect(loc('azure:my-vault/db-password')).toEqual({
      vault: 'my-vault',
      host: undefined,
      secret: 'db-password',
      version: undefined,
    });
    expect(loc('azure:MyVault/db/0123456789ABCDEF0123456789abcdef#user')).toEqual({
      vault: 'myvault',
      host: undefined,
      secret: 'db',
      version: '0123456789abcdef0123456789abcdef',
    });
    expect(loc('azure:https://kv1.vault.azure.cn/secrets/tls')).toEqual({
      vault: undefined,
      host: 'kv1.vault.azure.cn',
      secret: 'tls',
      version: undefined,
    });
    expect(
      loc(
        'azure:https://KV1.privatelink.vaultcore.azure.net:8443/secrets/tls/0123456789abcdef0123456789abcdef/',
      ),
    ).toMatchObject({
      host: 'kv1.privatelink.vaultcore.azure.net:8443',
      version: '0123456789abcdef0123456789abcdef',
    });
  });

  it.each([
    ['azure:vault-only', /not <vault-name>\/<secret>/],
    ['azure:v/x', /bad vault name/], // too short
    ['azure:1vault/x', /bad vault name/],
    ['azure:my--vault/x', /bad vault name/],
    ['azure:vault-/x', /bad vault name/],
    ['azure:a23456789012345678901234x/x', /bad vault name/],
    ['azure:myvault/under_score', /bad secret name/],
    ['azure:myvault/x/notaversion', /bad version/],
    ['azure:myvault/x/0123/extra', /not <vault-name>/],
    ['azure:myvault/x?version=0123456789abcdef0123456789abcdef', /has an option \(azure: takes none/],
    ['azure:http://kv.vault.azure.net/secrets/x', /not https/],
    ['azure:https://kv.vault.azure.net/keys/x', /not https:\/\/<vault-host>\/secrets/],
    ['azure:https://kv.vault.azure.net/secrets', /not https:\/\/<vault-host>\/secrets/],
    ['azure:https://bad host/secrets/x', /host is not a DNS name/],
  ])('refuses %s with SK_ERR_REF_SYNTAX naming where, never quoting the ref', (raw, why) => {
    let err: unknown;
    try {
      loc(raw);
    } catch (e) {
      err = e;
    }
    expect(isSkError(err)).toBe(true);
    if (!isSkError(err)) return;
    expect(err.code).toBe('SK_ERR_REF_SYNTAX');
    expect(err.message).toMatch(/^secrets\.db: the ref /);
    expect(err.message).toMatch(why);
    expect(err.message).not.toContain(parseRef(raw).locator);
  });
});

describe('azure: challenge and Retry-After parsing', () => {
  it("reads Key Vault's WWW-Authenticate challenge", () => {
    expect(
      parseChallenge(
        'Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net"',
      ),
    ).toEqual({
      authorization: 'https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47',
      resource: 'https://vault.azure.net',
    });
    expect(parseChallenge('Basic realm="x"')).toEqual({});
    expect(parseChallenge('')).toEqual({});
  });

  it('reads Retry-After as seconds or an HTTP date, and x-ms-retry-after-ms', () => {
    const res = (headers: Record<string, string>): HttpResponse => ({
      status: 429,
      headers,
      body: Buffer.alloc(0),
    });
    expect(retryAfterMs(res({ 'retry-after': '3' }))).toBe(3000);
    expect(
      retryAfterMs(
        res({ 'retry-after': 'Wed, 02 Dec 2026 10:00:10 GMT' }),
        Date.parse('2026-12-02T10:00:00Z'),
      ),
    ).toBe(10_000);
    expect(retryAfterMs(res({ 'x-ms-retry-after-ms': '250', 'retry-after': '3' }))).toBe(250);
    expect(retryAfterMs(res({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(retryAfterMs(res({}))).toBeUndefined();
  });
});
