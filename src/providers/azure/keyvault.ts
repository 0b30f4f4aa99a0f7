import { type TokenSource, type TransportError, transportFailure } from './credential.js';
import { AzureFailure } from './failure.js';
import { type HttpResponse, type Https, type RetryPolicy, retryAfterMs, withRetry } from './http.js';

/**
 * Key Vault's "Get Secret" (`GET {vault}/secrets/{name}[/{version}]?api-version=7.5`) with its
 * challenge-based authentication, as the Azure SDK does it: the first request to a vault goes without a
 * token; the 401 names, in `WWW-Authenticate: Bearer authorization="…", resource="…"`, the resource to
 * ask Entra for. The resource must be the vault's own domain (`vault.azure.net` for
 * `x.vault.azure.net`), so a wrong vault URL cannot collect a token meant for another service.
 */

export const KEYVAULT_API_VERSION = '7.5';

/** What Key Vault answered for a secret (the SecretBundle fields sidekey uses). */
export interface SecretBundle {
  readonly value: string;
  /** The version id, the last segment of the bundle's `id`. */
  readonly version: string;
  readonly contentType: string | undefined;
}

interface Challenge {
  readonly scope: string;
}

export class KeyVaultClient {
  readonly #http: Https;
  readonly #tokens: TokenSource;
  readonly #retry: RetryPolicy;
  /** Scope learned from each vault's challenge, by origin. */
  readonly #challenges = new Map<string, Promise<Challenge>>();
  /** Requests sent (every attempt), for tests and the bench. */
  readonly stats = { requests: 0, challenges: 0 };

  constructor(http: Https, tokens: TokenSource, retry: RetryPolicy) {
    this.#http = http;
    this.#tokens = tokens;
    this.#retry = retry;
  }

  async getSecret(
    vault: URL,
    name: string,
    version: string | undefined,
    signal: AbortSignal,
  ): Promise<SecretBundle> {
    const url = new URL(
      `/secrets/${encodeURIComponent(name)}${version ? `/${version}` : ''}?api-version=${KEYVAULT_API_VERSION}`,
      vault,
    );
    const challenge = await this.#challenge(vault, url, signal);
    let token = await this.#tokens.getToken(challenge.scope, signal);
    let r = await this.#send(url, token, signal);
    if (r.res.status === 401) {
      // A token Key Vault no longer takes (revoked, or the vault moved tenant): one fresh exchange.
      token = await this.#tokens.getToken(challenge.scope, signal, true);
      r = await this.#send(url, token, signal);
    }
    return toBundle(r.res, r.attempts, vault, name);
  }

  async #send(
    url: URL,
    token: string,
    signal: AbortSignal,
  ): Promise<{ res: HttpResponse; attempts: number }> {
    const r = await withRetry(
      () => {
        this.stats.requests++;
        return this.#http.request('GET', url, { authorization: `Bearer ${token}` }, undefined, signal);
      },
      this.#retry,
      signal,
    );
    if (!r.ok) throw vaultTransportFailure(r.error, url);
    return r;
  }

  /** The vault's challenge, asked once per vault (a failed ask is asked again next time). */
  #challenge(vault: URL, url: URL, signal: AbortSignal): Promise<Challenge> {
    const known = this.#challenges.get(vault.origin);
    if (known) return known;
    const p = this.#askChallenge(vault, url, signal);
    this.#challenges.set(vault.origin, p);
    p.catch(() => this.#challenges.delete(vault.origin));
    return p;
  }

  async #askChallenge(vault: URL, url: URL, signal: AbortSignal): Promise<Challenge> {
    const r = await withRetry(
      () => {
        this.stats.requests++;
        this.stats.challenges++;
        return this.#http.request('GET', url, {}, undefined, signal);
      },
      this.#retry,
      signal,
    );
    if (!r.ok) throw vaultTransportFailure(r.error, vault);
    if (r.res.status !== 401) {
      // No challenge: an error answer (throttled, down, a proxy page) says more than "no challenge".
      toBundle(r.res, r.attempts, vault, '');
      throw new AzureFailure(
        'SK_ERR_BACKEND_RESPONSE',
        `vault ${vault.host} answered without an authentication challenge`,
      );
    }
    const header = r.res.headers['www-authenticate'];
    const params = parseChallenge(typeof header === 'string' ? header : '');
    const resource = params.resource ?? params.scope?.replace(/\/\.default$/, '');
    let resourceUrl: URL | undefined;
    try {
      resourceUrl = resource !== undefined ? new URL(resource) : undefined;
    } catch {
      resourceUrl = undefined;
    }
    if (resourceUrl?.protocol !== 'https:')
      throw new AzureFailure(
        'SK_ERR_BACKEND_RESPONSE',
        `vault ${vault.host} sent a 401 without a usable Bearer resource`,
      );
    const host = vault.hostname.toLowerCase();
    const res = resourceUrl.hostname.toLowerCase();
    if (host !== res && !host.endsWith(`.${res}`)) {
      throw new AzureFailure(
        'SK_ERR_BACKEND_RESPONSE',
        `vault ${vault.host} asked for a token for ${res}, which is not its domain; refused (is the vault URL right?)`,
      );
    }
    return { scope: `${resourceUrl.origin}/.default` };
  }
}

/** A vault host that does not resolve is a vault that does not exist (a typo in its name, or the wrong cloud). */
function vaultTransportFailure(e: TransportError, vault: URL): AzureFailure {
  if (e.code === 'ENOTFOUND')
    return new AzureFailure(
      'SK_ERR_SOURCE_NOT_FOUND',
      `no such vault: ${vault.hostname} does not resolve (check the vault name, or backends.azure.cloud / vaultSuffix)`,
    );
  return transportFailure(e, `vault ${vault.host}`);
}

/** `Bearer authorization="…", resource="…"` → its parameters. */
export function parseChallenge(header: string): Record<string, string> {
  const m = /^\s*Bearer\s+(.*)$/is.exec(header);
  const out: Record<string, string> = {};
  if (!m) return out;
  for (const p of m[1]!.matchAll(/([A-Za-z_]+)="([^"]*)"/g)) out[p[1]!] = p[2]!;
  return out;
}

/** Key Vault's `{"error": {"code", "message", "innererror": {"code"}}}` codes, without the message. */
function errorCodes(body: Buffer): { code: string | undefined; inner: string | undefined } {
  try {
    const j = JSON.parse(body.toString('utf8')) as {
      error?: { code?: unknown; innererror?: { code?: unknown } };
    };
    const safe = (v: unknown) => (typeof v === 'string' && /^[A-Za-z0-9_.]{1,64}$/.test(v) ? v : undefined);
    return { code: safe(j?.error?.code), inner: safe(j?.error?.innererror?.code) };
  } catch {
    return { code: undefined, inner: undefined };
  }
}

const VERSION_IN_ID = /\/secrets\/[A-Za-z0-9-]{1,127}\/([0-9a-fA-F]{32})\/?$/;

/** A response as a bundle, or the typed failure it means. */
function toBundle(res: HttpResponse, attempts: number, vault: URL, name: string): SecretBundle {
  const after = attempts > 1 ? ` after ${attempts} attempts` : '';
  if (res.status === 200) {
    let j: { value?: unknown; id?: unknown; contentType?: unknown } | undefined;
    try {
      j = JSON.parse(res.body.toString('utf8')) as typeof j;
    } catch {
      j = undefined;
    }
    const version = typeof j?.id === 'string' ? VERSION_IN_ID.exec(j.id)?.[1] : undefined;
    if (j === undefined || j === null || typeof j !== 'object')
      throw new AzureFailure('SK_ERR_BACKEND_RESPONSE', 'the answer is not JSON');
    if (typeof j.value !== 'string')
      throw new AzureFailure('SK_ERR_BACKEND_RESPONSE', 'the answer has no value');
    if (version === undefined)
      throw new AzureFailure('SK_ERR_BACKEND_RESPONSE', 'the answer has no version id');
    return {
      value: j.value,
      version: version.toLowerCase(),
      contentType: typeof j.contentType === 'string' ? j.contentType : undefined,
    };
  }
  const { code, inner } = errorCodes(res.body);
  const codes = [code, inner].filter(Boolean).join('/');
  const tag = `HTTP ${res.status}${codes ? ` ${codes}` : ''}`;
  switch (res.status) {
    case 404:
      throw new AzureFailure('SK_ERR_SOURCE_NOT_FOUND', `secret or version not found (${tag})`);
    case 401:
      throw new AzureFailure('SK_ERR_BACKEND_AUTH', `Key Vault refused the token (${tag})`);
    case 403:
      if (inner === 'SecretDisabled')
        throw new AzureFailure(
          'SK_ERR_SOURCE_UNREADABLE',
          `the secret version is disabled (${tag}); enable it or pin another version`,
        );
      if (inner === 'ForbiddenByFirewall' || inner === 'ForbiddenByConnection')
        throw new AzureFailure(
          'SK_ERR_BACKEND_DENIED',
          `the vault's network rules refuse this client (${tag})`,
        );
      throw new AzureFailure(
        'SK_ERR_BACKEND_DENIED',
        `access denied (${tag}): the identity needs secrets/get on ${vault.host} (RBAC role "Key Vault Secrets User" or an access policy)`,
      );
    case 429: {
      const wait = retryAfterMs(res);
      throw new AzureFailure(
        'SK_ERR_BACKEND_UNAVAILABLE',
        `throttled (${tag})${after}${wait !== undefined ? `; Key Vault asks to wait ${Math.ceil(wait / 1000)} s` : ''}`,
      );
    }
    default:
      if (res.status >= 500 || res.status === 408)
        throw new AzureFailure('SK_ERR_BACKEND_UNAVAILABLE', `Key Vault unavailable (${tag})${after}`);
      throw new AzureFailure(
        'SK_ERR_BACKEND_RESPONSE',
        `unexpected answer (${tag})${name === '' ? ' to the challenge request' : ''}`,
      );
  }
}
