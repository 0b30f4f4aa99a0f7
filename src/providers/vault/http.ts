import { readFile } from 'node:fs/promises';
import pRetry, { AbortError } from 'p-retry';
import { parseDuration } from '../../duration.js';
import { type ErrorCode, SkError } from '../../errors.js';
import { isRecord } from '../../is-record.js';
import { deadlineRetryOptions } from '../deadline-retry.js';
import { Limiter } from '../limit.js';
import type { ProviderContext } from '../types.js';
import type { VaultSettings } from './descriptor.js';
import {
  type VaultRawResponse,
  type VaultRequester,
  VaultTransportError,
  vaultRequester,
} from './request.js';

/**
 * Vault's HTTP seam: one transport (request.ts, Node's own http/https; set up once with the address,
 * namespace and TLS settings), requests with bounded retries (429, 5xx, network errors; exponential
 * backoff with jitter) under a cap on requests in flight, and
 * the mapping of Vault's answers to sidekey's error codes, sanitised of tokens and request ids.
 * Knows nothing about tokens beyond sending the one it is given.
 *
 * Deadlines: every request ends at `backends.vault.timeout` (the whole answer included) or the call's
 * deadline, whichever comes first, and when the call's signal aborts (request.ts); no retry is
 * started that could not finish before the deadline, so the error is then Vault's own, not the
 * engine's timeout.
 */

/** Request timeout when `backends.vault.timeout` is not set. */
export const VAULT_DEFAULT_TIMEOUT_MS = 10_000;
/** Retry policy for retryable failures (429, 5xx, network): attempts = 1 + retries. */
export const VAULT_RETRY = Object.freeze({ retries: 3, minTimeoutMs: 250, maxTimeoutMs: 4000 });
/** Requests in flight to Vault at most, whatever the number of secrets (retry waits hold no slot). */
export const VAULT_MAX_IN_FLIGHT = 8;
/** A retry is started only if at least this long is left before the call's deadline. */
const VAULT_MIN_ATTEMPT_MS = 100;

export type HttpMethod = 'GET' | 'PUT' | 'POST';
export type RetryPolicy = { retries: number; minTimeoutMs: number; maxTimeoutMs: number };

/** The transport and what every request to this Vault carries. */
interface VaultClient {
  readonly send: VaultRequester;
  /** `<addr>/v1`: every API path hangs under it. */
  readonly base: string;
  /** Sent as X-Vault-Namespace when set (Vault Enterprise, OpenBao namespaces). */
  readonly namespace: string | undefined;
}

/** An HTTP answer from Vault that is not a success (200, or 204 without a body). */
export interface VaultHttpError {
  readonly status: number;
  readonly errors: string[];
}

/** Counters for tests and the bench (shared with the auth and read seams). */
export interface VaultStats {
  requests: number;
  logins: number;
  tokenRenewals: number;
  leaseRenewals: number;
}

/** The configured Vault address, checked: `backends.vault.addr`, else VAULT_ADDR; http(s). */
function vaultAddr(settings: Readonly<VaultSettings>, env: NodeJS.ProcessEnv): string {
  const addr = settings.addr ?? env.VAULT_ADDR;
  if (!addr) {
    throw new SkError('SK_ERR_BACKEND_CONFIG', 'backends.vault.addr is not set (nor VAULT_ADDR)', {
      where: 'backends.vault.addr',
    });
  }
  let url: URL;
  try {
    url = new URL(addr);
  } catch {
    throw new SkError('SK_ERR_BACKEND_CONFIG', `backends.vault.addr: "${addr}" is not a URL`, {
      where: 'backends.vault.addr',
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SkError('SK_ERR_BACKEND_CONFIG', `backends.vault.addr: "${addr}" is not http(s)`, {
      where: 'backends.vault.addr',
    });
  }
  return addr.replace(/\/+$/, '');
}

export class VaultHttp {
  readonly #settings: Readonly<VaultSettings>;
  readonly #env: NodeJS.ProcessEnv;
  readonly #retry: RetryPolicy;
  readonly #stats: VaultStats;
  readonly #addr: string;
  readonly #timeoutMs: number;
  readonly #limiter = new Limiter(VAULT_MAX_IN_FLIGHT);
  #clientPromise: Promise<VaultClient> | undefined;
  #requester: VaultRequester | undefined;

  /** Checks the address (SK_ERR_BACKEND_CONFIG) first; the timeout is checked by {@link parseTimeout}. */
  constructor(
    settings: Readonly<VaultSettings>,
    env: NodeJS.ProcessEnv,
    retry: RetryPolicy,
    stats: VaultStats,
  ) {
    this.#settings = settings;
    this.#env = env;
    this.#retry = retry;
    this.#stats = stats;
    this.#addr = vaultAddr(settings, env);
    this.#timeoutMs = parseTimeout(settings);
  }

  /** The most requests that were in flight at once (tests, bench). */
  get peakInFlight(): number {
    return this.#limiter.peak;
  }

  /** The per-request timeout (`backends.vault.timeout`). */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** Close idle keep-alive sockets (the provider's close). */
  destroy(): void {
    this.#requester?.destroy();
  }

  /** The transport bakes TLS settings into one https agent at creation, so the CA file is read first. */
  #getClient(): Promise<VaultClient> {
    this.#clientPromise ??= (async () => {
      const s = this.#settings;
      let ca: string | undefined;
      if (s.caCert) {
        try {
          ca = await readFile(s.caCert, 'utf8');
        } catch (e) {
          throw new SkError(
            'SK_ERR_BACKEND_CONFIG',
            `backends.vault.caCert: cannot read ${s.caCert} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
            { where: 'backends.vault.caCert', cause: e },
          );
        }
      }
      this.#requester = vaultRequester({
        ...(ca !== undefined ? { ca } : {}),
        ...(s.tlsServerName ? { servername: s.tlsServerName } : {}),
        // VAULT_SKIP_VERIFY is honoured as Vault's own CLI does
        rejectUnauthorized: !s.tlsSkipVerify && !this.#env.VAULT_SKIP_VERIFY,
      });
      // Tokens are sent per request by the auth seam (never picked up from VAULT_TOKEN here).
      const namespace = s.namespace || this.#env.VAULT_NAMESPACE || undefined;
      return { send: this.#requester, base: `${this.#addr}/v1`, namespace };
    })().catch((e: unknown) => {
      this.#clientPromise = undefined;
      throw e;
    });
    return this.#clientPromise;
  }

  /** One request with retries on 429/5xx/network errors; throws VaultHttpError or the network error. */
  async raw(
    ctx: ProviderContext,
    method: HttpMethod,
    path: string,
    body: Record<string, unknown> | undefined,
    where: string,
    token: string | undefined,
    opts: { retries?: number } = {},
  ): Promise<unknown> {
    const client = await this.#getClient();
    const retries = opts.retries ?? this.#retry.retries;
    const deadline = ctx.deadline ?? Number.POSITIVE_INFINITY;
    return pRetry(
      async () => {
        if (ctx.signal.aborted) throw new AbortError('aborted');
        return this.#limiter.run(async () => {
          // Waiting for a slot may have used the time up: no request that cannot finish.
          if (ctx.signal.aborted) throw new AbortError('aborted');
          const timeout = Math.max(1, Math.min(this.#timeoutMs, deadline - Date.now()));
          this.#stats.requests++;
          const headers: Record<string, string> = {};
          if (token) headers['X-Vault-Token'] = token;
          if (client.namespace) headers['X-Vault-Namespace'] = client.namespace;
          let res: VaultRawResponse;
          try {
            res = await client.send({
              uri: `${client.base}/${path}`,
              method,
              headers,
              ...(body ? { json: body } : {}),
              timeout,
              signal: ctx.signal,
            });
          } catch (e) {
            // A 2xx that is not JSON, or too large: the same again would not help.
            if (e instanceof VaultTransportError && (e.kind === 'not-json' || e.kind === 'too-large'))
              throw new AbortError(e);
            throw e;
          }
          // Vault answers 200 with a body, or 204 without one; any other status is an error answer.
          if (res.statusCode === 200 || res.statusCode === 204) return res.body;
          const http = httpError(res);
          throw retryableStatus(http.status) ? http : new AbortError(http);
        });
      },
      {
        retries,
        // No retry that could not finish before the deadline: fail now with the real cause.
        ...deadlineRetryOptions(this.#retry, ctx.signal, deadline, VAULT_MIN_ATTEMPT_MS),
        onFailedAttempt: ({ error, retriesLeft }) => {
          if (retriesLeft > 0) {
            ctx.log.debug(
              { where, status: (error as { status?: number }).status, retriesLeft },
              'vault retry',
            );
          }
        },
      },
    ).catch((e: unknown) => {
      // p-retry wraps the carrier of an AbortError in its own AbortError; unwrap.
      const original = (e as { originalError?: unknown }).originalError;
      const inner =
        e instanceof AbortError && (isHttp(original) || original instanceof VaultTransportError)
          ? original
          : e;
      // Aborted by the call's signal: say why (the deadline, or the agent stopping).
      if (ctx.signal.aborted && !isHttp(inner)) throw new Aborted(ctx.signal.reason);
      throw inner;
    });
  }
}

function parseTimeout(settings: Readonly<VaultSettings>): number {
  return settings.timeout === undefined
    ? VAULT_DEFAULT_TIMEOUT_MS
    : parseDuration(settings.timeout, 'backends.vault.timeout') || VAULT_DEFAULT_TIMEOUT_MS;
}

// ---- errors ----

export function retryableStatus(status: number): boolean {
  return status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

class HttpCarrier extends Error implements VaultHttpError {
  constructor(
    readonly status: number,
    readonly errors: string[],
  ) {
    super(`vault answered ${status}`);
  }
}

/** A non-success answer → status + Vault's error strings (none when the body is not Vault's JSON). */
function httpError(res: VaultRawResponse): HttpCarrier {
  const b = res.body;
  const errs = isRecord(b) && Array.isArray(b.errors) ? b.errors.map((x) => String(x)) : [];
  return new HttpCarrier(res.statusCode, errs);
}

/** Whether `e` is a non-success answer from Vault (as {@link VaultHttp.raw} throws it). */
export function isHttp(e: unknown): e is VaultHttpError {
  return e instanceof HttpCarrier;
}

/** Vault's own error text, sanitised: one line, no request ids, no tokens/accessors/JWTs, bounded. */
export function sanitiseVaultText(s: string): string {
  return (
    s
      .replace(/\s+/g, ' ')
      .replace(/\b(?:hvs|hvb|hvr|s|b|r)\.[A-Za-z0-9_-]{8,}/g, '<token>')
      // a JWT (the service-account token sent to kubernetes/jwt login), should a server or proxy echo it
      .replace(/\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, '<jwt>')
      .replace(/request[ _-]?id[:= ]+[0-9a-f-]{8,}/gi, '')
      .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '<id>')
      .slice(0, 200)
      .trim()
  );
}

function detail(h: VaultHttpError): string {
  const text = h.errors.map(sanitiseVaultText).filter(Boolean).join('; ');
  return text ? ` (${text})` : '';
}

/** A failed login or token lookup: SK_ERR_BACKEND_AUTH (or UNAVAILABLE for 429/5xx/network). */
export function authError(e: unknown, what: string): SkError {
  if (e instanceof SkError) return e;
  if (isHttp(e)) {
    if (retryableStatus(e.status)) {
      return new SkError('SK_ERR_BACKEND_UNAVAILABLE', `${what}: vault answered ${e.status}${detail(e)}`, {
        where: what,
      });
    }
    return new SkError('SK_ERR_BACKEND_AUTH', `${what}: failed with ${e.status}${detail(e)}`, {
      where: what,
    });
  }
  return networkError(e, what);
}

/** The call's signal aborted: its reason (the engine's SK_ERR_BACKEND_TIMEOUT, or stopping). */
class Aborted extends Error {
  override readonly name = 'AbortError';
  constructor(readonly reason: unknown) {
    super('aborted');
  }
}

function networkError(e: unknown, where: string): SkError {
  if (e instanceof Aborted && e.reason instanceof SkError) {
    return new SkError(e.reason.code, `${where}: vault request ended: ${e.reason.message}`, { where });
  }
  const err = e as { code?: string; message?: string; name?: string } | null;
  if (err?.name === 'AbortError') {
    return new SkError('SK_ERR_BACKEND_UNAVAILABLE', `${where}: vault request aborted`, { where, cause: e });
  }
  if (e instanceof VaultTransportError) {
    if (e.kind === 'not-json') {
      return new SkError(
        'SK_ERR_BACKEND_RESPONSE',
        `${where}: vault answered ${e.status} with a body that is not JSON (a proxy or another server at this address?)`,
        { where },
      );
    }
    if (e.kind === 'too-large') {
      return new SkError('SK_ERR_BACKEND_RESPONSE', `${where}: vault answer too large (over 4 MiB)`, {
        where,
      });
    }
    if (e.kind === 'truncated') {
      return new SkError(
        'SK_ERR_BACKEND_UNAVAILABLE',
        `${where}: vault answer cut off (the connection closed mid-answer)`,
        { where },
      );
    }
  }
  const code = err?.code ?? 'error';
  if (code.startsWith('HPE_')) {
    return new SkError(
      'SK_ERR_BACKEND_RESPONSE',
      `${where}: vault answered something that is not HTTP (${code}; a proxy or another server at this address?)`,
      { where },
    );
  }
  const why =
    code === 'ECONNABORTED' || code === 'ETIMEDOUT'
      ? 'timed out'
      : code === 'ECONNRESET'
        ? 'connection reset (ECONNRESET)'
        : /CERT|SELF_SIGNED|VERIFY|^ERR_TLS|^ERR_SSL|^EPROTO$/.test(code)
          ? `TLS failed (${code})`
          : `unreachable (${code})`;
  return new SkError('SK_ERR_BACKEND_UNAVAILABLE', `${where}: vault ${why}`, { where, cause: e });
}

/** A failed read/write: the typed code, naming `where` (the ref or lease) and the call. */
export function mapError(e: unknown, method: string, path: string, where: string): SkError {
  if (e instanceof SkError) return e;
  const call = `vault ${method === 'GET' ? 'read' : 'write'} ${path.replace(/\?.*$/, '')}`;
  if (!isHttp(e)) return networkError(e, `${where}: ${call}`);
  let code: ErrorCode;
  let why: string;
  const sealed = e.errors.some((x) => /sealed/i.test(x));
  switch (true) {
    case e.status === 404:
      code = 'SK_ERR_SOURCE_NOT_FOUND';
      why = 'not found';
      break;
    case e.status === 403:
      code = 'SK_ERR_BACKEND_DENIED';
      why = `permission denied: the token's policies do not grant ${method === 'GET' ? 'read' : 'update'} on path "${path.replace(/\?.*$/, '')}"`;
      break;
    case e.status === 401:
      code = 'SK_ERR_BACKEND_AUTH';
      why = 'not authenticated';
      break;
    case sealed || e.status === 503:
      code = 'SK_ERR_BACKEND_UNAVAILABLE';
      why = sealed ? 'vault is sealed' : 'vault is unavailable (503)';
      break;
    case retryableStatus(e.status):
      code = 'SK_ERR_BACKEND_UNAVAILABLE';
      why = `vault answered ${e.status} after retries`;
      break;
    case e.status === 400:
      code = 'SK_ERR_BACKEND_RESPONSE';
      why = 'bad request';
      break;
    default:
      code = 'SK_ERR_BACKEND_RESPONSE';
      why = `unexpected status ${e.status}`;
  }
  const extra = e.status === 403 || e.status === 404 ? '' : detail(e);
  return new SkError(code, `${where}: ${call}: ${why}${extra}`, { where });
}
