import { readFile } from 'node:fs/promises';
import { AzureFailure } from './failure.js';
import { type Https, type RetryPolicy, TransportError, withRetry } from './http.js';

/** An access token source for Key Vault scopes. */
export interface TokenSource {
  /** What it is, for log lines and error messages (never a token). */
  readonly describe: string;
  /** A bearer token for `scope` (`https://vault.azure.net/.default`); `fresh` skips the cache. */
  getToken(scope: string, signal: AbortSignal, fresh?: boolean): Promise<string>;
}

interface Cached {
  readonly token: string;
  /** Refresh after this (epoch ms): half the lifetime, or 5 minutes before expiry if that is sooner. */
  readonly refreshAt: number;
}

/** Caches tokens per scope and shares one exchange among concurrent callers. */
abstract class CachingSource implements TokenSource {
  abstract readonly describe: string;
  readonly #cache = new Map<string, Cached>();
  readonly #inFlight = new Map<string, Promise<string>>();
  /** Exchanges made (tests, bench). */
  exchanges = 0;

  async getToken(scope: string, signal: AbortSignal, fresh = false): Promise<string> {
    const hit = this.#cache.get(scope);
    if (!fresh && hit && Date.now() < hit.refreshAt) return hit.token;
    const running = this.#inFlight.get(scope);
    if (running) return running;
    const p = (async () => {
      this.exchanges++;
      const { token, expiresAt } = await this.exchange(scope, signal);
      const now = Date.now();
      const life = Math.max(0, expiresAt - now);
      this.#cache.set(scope, { token, refreshAt: now + Math.max(0, Math.min(life - 300_000, life / 2)) });
      return token;
    })().finally(() => this.#inFlight.delete(scope));
    this.#inFlight.set(scope, p);
    return p;
  }

  protected abstract exchange(
    scope: string,
    signal: AbortSignal,
  ): Promise<{ token: string; expiresAt: number }>;
}

export interface WorkloadIdentityConfig {
  readonly tenantId: string;
  readonly clientId: string;
  /** `https://login.microsoftonline.com/` or AZURE_AUTHORITY_HOST. */
  readonly authorityHost: string;
  readonly tokenFile: string;
  /** Where each value came from, for messages (`backends.azure.tokenFile` or `AZURE_FEDERATED_TOKEN_FILE`). */
  readonly from: { readonly tenantId: string; readonly clientId: string; readonly tokenFile: string };
}

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const EXCHANGE = 'Entra token exchange';

/** Well-known Entra error codes, with the fix. */
const AADSTS_HINTS: Readonly<Record<string, string>> = {
  '700016': 'the client id is not an application in this tenant: check the client id and tenant id',
  '70021':
    'no federated identity credential matches the token: check its issuer (the cluster OIDC issuer), subject (system:serviceaccount:<namespace>:<name>) and audience (api://AzureADTokenExchange)',
  '700024': 'the service-account token is expired or not yet valid (check the clock and the token rotation)',
  '700211': "no federated identity credential has the token's issuer: add the cluster's OIDC issuer URL",
  '700212':
    "no federated identity credential has the token's audience (api://AzureADTokenExchange by default)",
  '700213':
    "no federated identity credential has the token's subject (system:serviceaccount:<namespace>:<name>)",
  '90002': 'the tenant does not exist: check the tenant id',
};

/**
 * AKS Workload Identity: the pod's projected service-account token (audience
 * `api://AzureADTokenExchange`) is the client assertion of an OAuth client-credentials request to
 * `POST {authority}/{tenant}/oauth2/v2.0/token`. The token file is read on every exchange, because
 * the kubelet rotates it.
 */
export class WorkloadIdentitySource extends CachingSource {
  readonly describe: string;
  readonly #cfg: WorkloadIdentityConfig;
  readonly #http: Https;
  readonly #retry: RetryPolicy;
  /** The endpoint, for tests. */
  readonly tokenUrl: URL;

  constructor(cfg: WorkloadIdentityConfig, http: Https, retry: RetryPolicy) {
    super();
    this.#cfg = cfg;
    this.#http = http;
    this.#retry = retry;
    this.describe = `workload identity (client ${cfg.clientId}, tenant ${cfg.tenantId})`;
    const base = cfg.authorityHost.endsWith('/') ? cfg.authorityHost : `${cfg.authorityHost}/`;
    this.tokenUrl = new URL(`${encodeURIComponent(cfg.tenantId)}/oauth2/v2.0/token`, base);
  }

  protected async exchange(
    scope: string,
    signal: AbortSignal,
  ): Promise<{ token: string; expiresAt: number }> {
    const cfg = this.#cfg;
    let assertion: string;
    try {
      assertion = (await readFile(cfg.tokenFile, 'utf8')).trim();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new AzureFailure(
        'SK_ERR_BACKEND_CONFIG',
        code === 'ENOENT'
          ? `${cfg.from.tokenFile} ${cfg.tokenFile} does not exist (the pod needs the projected service-account token with audience api://AzureADTokenExchange)`
          : `${cfg.from.tokenFile} ${cfg.tokenFile} cannot be read (${code ?? 'error'})`,
        EXCHANGE,
      );
    }
    if (assertion === '')
      throw new AzureFailure(
        'SK_ERR_BACKEND_CONFIG',
        `${cfg.from.tokenFile} ${cfg.tokenFile} is empty`,
        EXCHANGE,
      );
    const body = new URLSearchParams({
      client_id: cfg.clientId,
      scope,
      grant_type: 'client_credentials',
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: assertion,
    }).toString();
    const at = `${EXCHANGE} at ${this.tokenUrl.host}`;
    const r = await withRetry(
      () =>
        this.#http.request(
          'POST',
          this.tokenUrl,
          { 'content-type': 'application/x-www-form-urlencoded' },
          body,
          signal,
        ),
      this.#retry,
      signal,
    );
    if (!r.ok) throw transportFailure(r.error, `the Entra authority host ${this.tokenUrl.host}`, EXCHANGE);
    const { res } = r;
    let json: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(res.body.toString('utf8'));
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
        json = parsed as Record<string, unknown>;
    } catch {
      json = undefined;
    }
    if (res.status === 200) {
      const token = json?.access_token;
      const expiresIn = Number(json?.expires_in);
      if (typeof token !== 'string' || token === '' || !Number.isFinite(expiresIn) || expiresIn <= 0)
        throw new AzureFailure(
          'SK_ERR_BACKEND_RESPONSE',
          `${at}: answer without access_token/expires_in`,
          EXCHANGE,
        );
      return { token, expiresAt: Date.now() + expiresIn * 1000 };
    }
    if (res.status === 429 || res.status >= 500)
      throw new AzureFailure(
        'SK_ERR_BACKEND_UNAVAILABLE',
        `${at}: ${res.status === 429 ? 'throttled' : `HTTP ${res.status}`} after ${r.attempts} attempt${r.attempts > 1 ? 's' : ''}`,
        EXCHANGE,
      );
    const err = typeof json?.error === 'string' && /^[a-z_]{1,64}$/.test(json.error) ? json.error : undefined;
    if (err === undefined)
      throw new AzureFailure(
        'SK_ERR_BACKEND_RESPONSE',
        `${at}: HTTP ${res.status} without an OAuth error`,
        EXCHANGE,
      );
    const desc = typeof json?.error_description === 'string' ? json.error_description : '';
    const aadsts = /AADSTS(\d{4,8})/.exec(desc)?.[1];
    const hint = aadsts !== undefined ? AADSTS_HINTS[aadsts] : undefined;
    throw new AzureFailure(
      'SK_ERR_BACKEND_AUTH',
      `${at}: refused for client ${cfg.clientId} in tenant ${cfg.tenantId} (${err}${aadsts ? ` AADSTS${aadsts}` : ''})${hint ? `: ${hint}` : ''}`,
      EXCHANGE,
    );
  }
}

/**
 * Off the cluster: `DefaultAzureCredential` from @azure/identity (environment, workload identity,
 * managed identity, Azure CLI, Azure Developer CLI, Azure PowerShell), loaded only when it is used:
 * with MSAL it would add 3.5 MiB (bundled) and hundreds of ms of start-up to every agent otherwise.
 */
export class DefaultCredentialSource extends CachingSource {
  readonly describe = 'DefaultAzureCredential';
  #cred: Promise<{ getToken(scope: string, o: { abortSignal: AbortSignal }): Promise<unknown> }> | undefined;

  protected async exchange(
    scope: string,
    signal: AbortSignal,
  ): Promise<{ token: string; expiresAt: number }> {
    this.#cred ??= import('@azure/identity').then((m) => new m.DefaultAzureCredential());
    let out: unknown;
    try {
      out = await (await this.#cred).getToken(scope, { abortSignal: signal });
    } catch (e) {
      const name = e instanceof Error ? e.name : 'Error';
      throw new AzureFailure(
        'SK_ERR_BACKEND_AUTH',
        `DefaultAzureCredential found no usable credential (${name}): in a pod set the workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE); on a laptop run \`az login\``,
        'token request',
      );
    }
    const t = out as { token?: unknown; expiresOnTimestamp?: unknown } | null;
    if (typeof t?.token !== 'string' || typeof t.expiresOnTimestamp !== 'number')
      throw new AzureFailure(
        'SK_ERR_BACKEND_AUTH',
        'DefaultAzureCredential returned no token',
        'token request',
      );
    return { token: t.token, expiresAt: t.expiresOnTimestamp };
  }
}

/** A transport failure as the typed failure (ENOTFOUND: the host does not exist, not worth retrying). */
export function transportFailure(e: TransportError, what: string, call?: string): AzureFailure {
  if (e.code === 'ENOTFOUND')
    return new AzureFailure('SK_ERR_BACKEND_CONFIG', `${what} does not resolve (ENOTFOUND)`, call);
  if (e.code === 'TOO_LARGE')
    return new AzureFailure('SK_ERR_BACKEND_RESPONSE', `${what} sent an oversized answer`, call);
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(e.code))
    return new AzureFailure('SK_ERR_BACKEND_UNAVAILABLE', `${what}: TLS failed (${e.code})`, call);
  return new AzureFailure('SK_ERR_BACKEND_UNAVAILABLE', `${what} unreachable (${e.code})`, call);
}

export { TransportError };
