import { readFile } from 'node:fs/promises';
import { SkError } from '../../errors.js';
import { isRecord } from '../../is-record.js';
import type { ProviderContext } from '../types.js';
import type { VaultSettings } from './descriptor.js';
import { authError, type HttpMethod, isHttp, mapError, type VaultHttp, type VaultStats } from './http.js';

/**
 * Vault's auth seam: the login (kubernetes, jwt, approle, or a given token), the token's lifetime
 * (renewed at 2/3 of its TTL, a new login when it cannot be renewed or turns out dead) and the
 * authenticated call the reads use. One login shared by every secret (single flight); never a login
 * per retry, and a denied path never causes a login storm.
 */

/** Where the kubernetes auth method reads the pod's service-account token by default. */
export const VAULT_DEFAULT_SA_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';
/** A token is renewed once this fraction of its TTL has passed. */
const TOKEN_RENEW_FRACTION = 2 / 3;
/** At most one "is my token still valid?" check per this window, whatever the number of 403s. */
const TOKEN_CHECK_MIN_INTERVAL_MS = 5000;

type AuthMethod = NonNullable<VaultSettings['authMethod']>;

interface TokenState {
  readonly token: string;
  /** Epoch ms after which the token is gone; Infinity for a non-expiring (root) token. */
  readonly expiresAt: number;
  readonly renewable: boolean;
  /** Whether we can get a new one by logging in again (not so for a token given as a file). */
  readonly fromLogin: boolean;
}

export class VaultAuth {
  readonly #settings: Readonly<VaultSettings>;
  readonly #env: NodeJS.ProcessEnv;
  readonly #now: () => number;
  readonly #http: VaultHttp;
  readonly #stats: VaultStats;
  readonly #method: AuthMethod;
  readonly #authPath: string;
  #token: TokenState | undefined;
  #login: Promise<TokenState> | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #lastTokenCheck = 0;
  #tokenCheck: Promise<boolean> | undefined;
  #closed = false;
  /** Aborted by close(): ends background work (token renewal, a login it started). */
  readonly #closing = new AbortController();

  constructor(
    settings: Readonly<VaultSettings>,
    env: NodeJS.ProcessEnv,
    now: () => number,
    http: VaultHttp,
    stats: VaultStats,
  ) {
    this.#settings = settings;
    this.#env = env;
    this.#now = now;
    this.#http = http;
    this.#stats = stats;
    this.#method = settings.authMethod ?? this.#guessMethod();
    this.#authPath = normaliseAuthPath(settings.authPath ?? this.#method);
  }

  /** Whether a token is held (a login happened and was not dropped). */
  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  /** Stop renewing; the token is left to run out. */
  close(): void {
    this.#closed = true;
    this.#closing.abort();
    if (this.#renewTimer) clearTimeout(this.#renewTimer);
    this.#renewTimer = undefined;
  }

  #guessMethod(): AuthMethod {
    if (this.#settings.tokenFile || this.#env.VAULT_TOKEN) return 'token';
    if (this.#settings.roleIdFile) return 'approle';
    return 'kubernetes';
  }

  /**
   * An authenticated call with bounded retries. A 403 triggers one token check (rate-limited) and,
   * when the token is dead, one new login and one more try; never a login per retry.
   */
  async call(
    ctx: ProviderContext,
    method: HttpMethod,
    path: string,
    body: Record<string, unknown> | undefined,
    where: string,
    opts: { retries?: number } = {},
  ): Promise<unknown> {
    const t = await this.#ensureToken(ctx);
    try {
      return await this.#http.raw(ctx, method, path, body, where, t.token, opts);
    } catch (e) {
      if (isHttp(e) && e.status === 403 && (await this.#tokenIsDead(t, ctx))) {
        if (this.#token === t) this.#token = undefined;
        const fresh = await this.#ensureToken(ctx);
        try {
          return await this.#http.raw(ctx, method, path, body, where, fresh.token, opts);
        } catch (e2) {
          throw mapError(e2, method, path, where);
        }
      }
      throw mapError(e, method, path, where);
    }
  }

  async #ensureToken(ctx: ProviderContext): Promise<TokenState> {
    const t = this.#token;
    if (t && this.#now() < t.expiresAt - 1000) return t;
    this.#token = undefined;
    return this.#loginOnce(ctx);
  }

  /** Single flight: every secret waiting for a token shares one login. */
  #loginOnce(ctx: ProviderContext): Promise<TokenState> {
    if (!this.#login) {
      this.#login = this.#doLogin(ctx)
        .then((t) => {
          this.#token = t;
          this.#scheduleRenew(t, ctx);
          return t;
        })
        .finally(() => {
          this.#login = undefined;
        });
    }
    return this.#login;
  }

  async #doLogin(ctx: ProviderContext): Promise<TokenState> {
    const method = this.#method;
    if (method === 'token') {
      const token = await this.#readTokenSource();
      // Learn the TTL so a renewable token is renewed before it runs out.
      const body = await this.#http
        .raw(ctx, 'GET', 'auth/token/lookup-self', undefined, 'vault token', token)
        .catch((e: unknown) => {
          throw authError(e, `vault token auth (${this.#settings.tokenFile ?? 'VAULT_TOKEN'})`);
        });
      const d = isRecord(body) && isRecord(body.data) ? body.data : {};
      const ttl = typeof d.ttl === 'number' ? d.ttl : 0;
      this.#stats.logins++;
      return {
        token,
        expiresAt: ttl > 0 ? this.#now() + ttl * 1000 : Number.POSITIVE_INFINITY,
        renewable: d.renewable === true,
        fromLogin: false,
      };
    }
    let payload: Record<string, string>;
    let what: string;
    if (method === 'approle') {
      const roleIdFile = this.#settings.roleIdFile;
      const secretIdFile = this.#settings.secretIdFile;
      if (!roleIdFile) {
        throw new SkError('SK_ERR_BACKEND_CONFIG', 'backends.vault.roleIdFile is required for approle auth', {
          where: 'backends.vault.roleIdFile',
        });
      }
      payload = { role_id: await readCredential(roleIdFile, 'backends.vault.roleIdFile') };
      if (secretIdFile) payload.secret_id = await readCredential(secretIdFile, 'backends.vault.secretIdFile');
      what = `vault approle login at ${this.#authPath}`;
    } else {
      const role = this.#settings.role;
      if (!role) {
        throw new SkError('SK_ERR_BACKEND_CONFIG', `backends.vault.role is required for ${method} auth`, {
          where: 'backends.vault.role',
        });
      }
      const jwtFile =
        this.#settings.jwtFile ?? (method === 'kubernetes' ? VAULT_DEFAULT_SA_TOKEN_FILE : undefined);
      if (!jwtFile) {
        throw new SkError('SK_ERR_BACKEND_CONFIG', 'backends.vault.jwtFile is required for jwt auth', {
          where: 'backends.vault.jwtFile',
        });
      }
      // Re-read at every login: the kubelet rotates projected tokens.
      payload = { role, jwt: await readCredential(jwtFile, 'backends.vault.jwtFile') };
      what = `vault ${method} login as role "${role}" at ${this.#authPath}`;
    }
    const body = await this.#http
      .raw(ctx, 'POST', `${this.#authPath}/login`, payload, what, undefined)
      .catch((e: unknown) => {
        throw authError(e, what);
      });
    const auth = isRecord(body) && isRecord(body.auth) ? body.auth : undefined;
    if (!auth || typeof auth.client_token !== 'string' || auth.client_token === '') {
      throw new SkError('SK_ERR_BACKEND_RESPONSE', `${what}: the answer has no auth.client_token`, {
        where: this.#authPath,
      });
    }
    const ttl = typeof auth.lease_duration === 'number' ? auth.lease_duration : 0;
    this.#stats.logins++;
    ctx.log.info({ authPath: this.#authPath, method, ttlSeconds: ttl }, 'vault login');
    return {
      token: auth.client_token,
      expiresAt: ttl > 0 ? this.#now() + ttl * 1000 : Number.POSITIVE_INFINITY,
      renewable: auth.renewable === true,
      fromLogin: true,
    };
  }

  async #readTokenSource(): Promise<string> {
    if (this.#settings.tokenFile) return readCredential(this.#settings.tokenFile, 'backends.vault.tokenFile');
    const t = this.#env.VAULT_TOKEN;
    if (!t) {
      throw new SkError(
        'SK_ERR_BACKEND_CONFIG',
        'backends.vault.tokenFile is not set (nor VAULT_TOKEN) for token auth',
        {
          where: 'backends.vault.tokenFile',
        },
      );
    }
    return t.trim();
  }

  #scheduleRenew(t: TokenState, ctx: ProviderContext): void {
    if (this.#renewTimer) clearTimeout(this.#renewTimer);
    this.#renewTimer = undefined;
    if (!Number.isFinite(t.expiresAt) || this.#closed) return;
    const left = t.expiresAt - this.#now();
    const delay = Math.max(1000, left * TOKEN_RENEW_FRACTION);
    // The renewal runs later, outside the call that logged in (whose signal is done by then): it
    // gets a context of its own, ended by close() or its own deadline.
    this.#renewTimer = setTimeout(() => {
      void this.#renewToken(t, this.#backgroundCtx(ctx));
    }, delay);
    this.#renewTimer.unref();
  }

  /** A context for background work: aborted by close(), with a deadline of a few attempts. */
  #backgroundCtx(from: ProviderContext): ProviderContext {
    const ms = 4 * this.#http.timeoutMs;
    return {
      log: from.log,
      signal: AbortSignal.any([this.#closing.signal, AbortSignal.timeout(ms)]),
      deadline: Date.now() + ms,
    };
  }

  /** Renew the token; when it cannot be renewed, drop it so the next request logs in again. */
  async #renewToken(t: TokenState, ctx: ProviderContext): Promise<void> {
    if (this.#token !== t || this.#closed) return;
    if (t.renewable) {
      try {
        const body = await this.#http.raw(
          ctx,
          'PUT',
          'auth/token/renew-self',
          {},
          'vault token renew-self',
          t.token,
        );
        const auth = isRecord(body) && isRecord(body.auth) ? body.auth : undefined;
        const ttl = auth && typeof auth.lease_duration === 'number' ? auth.lease_duration : 0;
        const left = (t.expiresAt - this.#now()) / 1000;
        // A renewal that does not extend the token (its max TTL) is no renewal: log in again instead.
        if (ttl > 0 && ttl > left + 1) {
          const next: TokenState = { ...t, expiresAt: this.#now() + ttl * 1000 };
          this.#token = next;
          this.#stats.tokenRenewals++;
          ctx.log.debug({ ttlSeconds: ttl }, 'vault token renewed');
          this.#scheduleRenew(next, ctx);
          return;
        }
      } catch (e) {
        ctx.log.warn({ code: (e as SkError).code }, 'vault token renewal failed; logging in again');
      }
    }
    if (this.#token === t && t.fromLogin) {
      this.#token = undefined;
      await this.#loginOnce(ctx).catch((e: unknown) => {
        ctx.log.warn({ code: (e as SkError).code }, 'vault login failed; retrying on the next fetch');
      });
    }
  }

  /**
   * After a 403, is our token itself dead (expired, revoked)? Checked at most once per few seconds
   * whatever the number of failing secrets, so a denied path never causes a login storm.
   */
  async #tokenIsDead(t: TokenState, ctx: ProviderContext): Promise<boolean> {
    if (!t.fromLogin && !this.#settings.tokenFile) return false;
    if (this.#tokenCheck) return this.#tokenCheck;
    if (this.#now() - this.#lastTokenCheck < TOKEN_CHECK_MIN_INTERVAL_MS) return false;
    this.#lastTokenCheck = this.#now();
    this.#tokenCheck = this.#http
      .raw(ctx, 'GET', 'auth/token/lookup-self', undefined, 'vault token lookup-self', t.token)
      .then(() => false)
      .catch((e: unknown) => isHttp(e) && (e.status === 403 || e.status === 401))
      .finally(() => {
        this.#tokenCheck = undefined;
      });
    return this.#tokenCheck;
  }
}

function normaliseAuthPath(p: string): string {
  const s = p.replace(/^\/+|\/+$/g, '');
  return s.startsWith('auth/') ? s : `auth/${s}`;
}

async function readCredential(file: string, where: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new SkError(
      'SK_ERR_BACKEND_AUTH',
      `${where}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      { where, cause: e },
    );
  }
  const v = text.trim();
  if (v === '') throw new SkError('SK_ERR_BACKEND_AUTH', `${where}: ${file} is empty`, { where });
  return v;
}
