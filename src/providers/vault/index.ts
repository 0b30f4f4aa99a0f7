import { readFile } from 'node:fs/promises';
import nodeVault from 'node-vault';
import pRetry, { AbortError } from 'p-retry';
import { parseDuration } from '../../duration.js';
import { type ErrorCode, SkError } from '../../errors.js';
import { fingerprint } from '../../fingerprint.js';
import { isRecord } from '../../is-record.js';
import type { SecretRef } from '../../refs.js';
import type { Backends } from '../../spec.js';
import { Limiter } from '../limit.js';
import type { FetchResult, Lease, Provider, ProviderContext, ProviderFactory } from '../types.js';
import { type VaultSettings, vaultBackend } from './descriptor.js';

/**
 * The `vault:` provider (HashiCorp Vault and OpenBao, through node-vault):
 * `vault:<api path>[?version=N][#key]`.
 *
 * - KV v2 (`secret/data/app/db` or `secret/app/db`: the mount's engine version is detected once per
 *   mount through `sys/internal/ui/mounts/<path>`), KV v1, and any other readable path such as the
 *   dynamic `database/creds/<role>`. The result is the `data` map; `#key` is applied by the caller.
 * - Versions: `kv2:<metadata.version>` for KV v2, `fp:<fingerprint>` of the data otherwise (a
 *   keyed fingerprint, src/fingerprint.ts: stable within the process, not guessable offline).
 * - Dynamic secrets carry a {@link Lease}; {@link VaultProvider.renew} extends it through
 *   `sys/leases/renew` and throws SK_ERR_LEASE_NOT_RENEWABLE once the max TTL caps it, so the engine
 *   fetches a new set while the old one is still valid.
 * - One login shared by every secret (single flight); the token is renewed at 2/3 of its TTL and a
 *   new login happens only when it cannot be renewed or turns out to be invalid.
 * - Retries: 429, 5xx and network errors, bounded, with exponential backoff and jitter; never a new
 *   login per retry.
 */

/** Where the kubernetes auth method reads the pod's service-account token by default. */
export const VAULT_DEFAULT_SA_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';
/** Request timeout when `backends.vault.timeout` is not set. */
export const VAULT_DEFAULT_TIMEOUT_MS = 10_000;
/** Retry policy for retryable failures (429, 5xx, network): attempts = 1 + retries. */
export const VAULT_RETRY = Object.freeze({ retries: 3, minTimeoutMs: 250, maxTimeoutMs: 4000 });
/** Requests in flight to Vault at most, whatever the number of secrets (retry waits hold no slot). */
export const VAULT_MAX_IN_FLIGHT = 8;
/** A token is renewed once this fraction of its TTL has passed. */
const TOKEN_RENEW_FRACTION = 2 / 3;
/** At most one "is my token still valid?" check per this window, whatever the number of 403s. */
const TOKEN_CHECK_MIN_INTERVAL_MS = 5000;

type AuthMethod = NonNullable<VaultSettings['authMethod']>;
type VaultClient = ReturnType<typeof nodeVault>;

export const vaultProvider: ProviderFactory = {
  name: 'vault',
  validateRef: vaultBackend.validateRef,
  needs: { serviceAccountToken: true },
  create(backends: Backends): Provider {
    return new VaultProvider(backends.vault ?? {});
  },
};

/** Test seams: environment, clock and sleep. */
export interface VaultProviderOptions {
  env?: NodeJS.ProcessEnv;
  now?: () => number;
  retry?: { retries: number; minTimeoutMs: number; maxTimeoutMs: number };
}

interface TokenState {
  readonly token: string;
  /** Epoch ms after which the token is gone; Infinity for a non-expiring (root) token. */
  readonly expiresAt: number;
  readonly renewable: boolean;
  /** Whether we can get a new one by logging in again (not so for a token given as a file). */
  readonly fromLogin: boolean;
}

interface MountInfo {
  /** Mount path with a trailing slash, e.g. `secret/`. */
  readonly path: string;
  readonly type: string;
  readonly kvVersion: 1 | 2 | undefined;
}

/** An HTTP answer from Vault that is not 2xx (node-vault's ApiResponseError). */
interface VaultHttpError {
  readonly status: number;
  readonly errors: string[];
}

/** The Vault/OpenBao provider. One instance per agent; all secrets share its login. */
export class VaultProvider implements Provider {
  readonly name = 'vault';
  readonly #settings: Readonly<VaultSettings>;
  readonly #env: NodeJS.ProcessEnv;
  readonly #now: () => number;
  readonly #retry: { retries: number; minTimeoutMs: number; maxTimeoutMs: number };
  readonly #method: AuthMethod;
  readonly #authPath: string;
  #token: TokenState | undefined;
  #login: Promise<TokenState> | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #lastTokenCheck = 0;
  #tokenCheck: Promise<boolean> | undefined;
  readonly #mounts = new Map<string, MountInfo | null>();
  /** Mount lookups in flight. */
  readonly #mountLookups = new Set<Promise<MountInfo | null>>();
  /** The last read of each dynamic path (shared by the secrets that read it at about the same time). */
  readonly #issued = new Map<string, { result: Promise<FetchResult> }>();
  /** The last renewal of each lease (shared likewise). */
  readonly #renewals = new Map<string, { at: number; ttlMs: number; outcome: Promise<Lease> }>();
  /** Dynamic leases issued to us → when they run out (epoch ms); revoked on close() when revokeOnShutdown is set. */
  readonly #leases = new Map<string, number>();
  #closed = false;
  /** Counters for tests and the bench: requests sent and logins done. */
  readonly stats = { requests: 0, logins: 0, tokenRenewals: 0, leaseRenewals: 0 };
  readonly #limiter = new Limiter(VAULT_MAX_IN_FLIGHT);

  /** The most requests that were in flight at once (tests, bench). */
  get peakInFlight(): number {
    return this.#limiter.peak;
  }

  constructor(settings: Readonly<VaultSettings>, opts: VaultProviderOptions = {}) {
    this.#settings = settings;
    this.#env = opts.env ?? process.env;
    this.#now = opts.now ?? Date.now;
    this.#retry = opts.retry ?? VAULT_RETRY;
    const addr = settings.addr ?? this.#env.VAULT_ADDR;
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
    this.#method = settings.authMethod ?? this.#guessMethod();
    this.#authPath = normaliseAuthPath(settings.authPath ?? this.#method);
    this.#timeoutMs =
      settings.timeout === undefined
        ? VAULT_DEFAULT_TIMEOUT_MS
        : parseDuration(settings.timeout, 'backends.vault.timeout') || VAULT_DEFAULT_TIMEOUT_MS;
    this.#addr = addr.replace(/\/+$/, '');
  }

  readonly #addr: string;
  readonly #timeoutMs: number;
  #clientPromise: Promise<VaultClient> | undefined;

  /** node-vault bakes TLS settings into one https agent at creation, so the CA file is read first. */
  #getClient(): Promise<VaultClient> {
    this.#clientPromise ??= (async () => {
      const s = this.#settings;
      const requestOptions: Record<string, unknown> = {};
      if (s.caCert) {
        try {
          requestOptions.ca = await readFile(s.caCert, 'utf8');
        } catch (e) {
          throw new SkError(
            'SK_ERR_BACKEND_CONFIG',
            `backends.vault.caCert: cannot read ${s.caCert} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
            { where: 'backends.vault.caCert', cause: e },
          );
        }
      }
      if (s.tlsServerName) requestOptions.agentOptions = { servername: s.tlsServerName };
      if (s.tlsSkipVerify) requestOptions.strictSSL = false;
      const client = nodeVault({
        endpoint: this.#addr,
        namespace: s.namespace ?? this.#env.VAULT_NAMESPACE,
        requestOptions,
      });
      // node-vault would pick VAULT_TOKEN up by itself; tokens are sent per request from #ensureToken.
      client.token = '';
      return client;
    })().catch((e: unknown) => {
      this.#clientPromise = undefined;
      throw e;
    });
    return this.#clientPromise;
  }

  #guessMethod(): AuthMethod {
    if (this.#settings.tokenFile || this.#env.VAULT_TOKEN) return 'token';
    if (this.#settings.roleIdFile) return 'approle';
    return 'kubernetes';
  }

  async fetch(ref: SecretRef, ctx: ProviderContext): Promise<FetchResult> {
    vaultProvider.validateRef(ref, ref.raw);
    const mount = await this.#mountOf(ref, ctx);
    let path = ref.locator.replace(/\/+$/, '');
    let kv2 = false;
    if (mount?.kvVersion === 2) {
      kv2 = true;
      const rest = path.slice(mount.path.length);
      if (!rest.startsWith('data/')) path = `${mount.path}data/${rest}`;
    } else if (ref.options.version !== undefined) {
      throw new SkError('SK_ERR_REF_SYNTAX', `${ref.raw}: ?version= applies to KV v2 mounts only`, {
        where: ref.raw,
      });
    }
    const query = ref.options.version ? `?version=${ref.options.version}` : '';
    if (kv2) {
      return this.#toResult(ref, await this.#call(ctx, 'GET', `${path}${query}`, undefined, ref.raw), true);
    }
    // A dynamic secret read by several secrets (one per #key) must be one credential set: a read of
    // the same path shortly after another returns the set just issued instead of issuing a new one.
    const key = `${path}${query}`;
    const recent = this.#issued.get(key);
    if (recent) {
      const lease = (await recent.result.catch(() => undefined))?.lease;
      if (lease && this.#now() - lease.issuedAt < shareWindow(lease.ttlMs)) return recent.result;
    }
    const result = this.#call(ctx, 'GET', key, undefined, ref.raw).then((body) =>
      this.#toResult(ref, body, false),
    );
    this.#issued.set(key, { result });
    result.then(
      (r) => {
        if (!r.lease) this.#issued.delete(key);
      },
      () => this.#issued.delete(key),
    );
    return result;
  }

  #toResult(ref: SecretRef, body: unknown, kv2: boolean): FetchResult {
    const bad = (why: string): never => {
      throw new SkError('SK_ERR_BACKEND_RESPONSE', `${ref.raw}: vault read ${ref.locator}: ${why}`, {
        where: ref.raw,
      });
    };
    if (!isRecord(body)) return bad('the answer is not a JSON object');
    const data = body.data;
    if (!isRecord(data)) return bad('the answer has no data');
    // An explicit KV v2 /data/ path read through an undetected mount still has the v2 shape.
    if (
      kv2 ||
      (isRecord(data.data) && isRecord(data.metadata) && typeof data.metadata.version === 'number')
    ) {
      const meta = data.metadata;
      if (!isRecord(data.data)) {
        // KV v2 answers 404 with metadata (and data null) for a deleted or destroyed version.
        throw new SkError(
          'SK_ERR_SOURCE_NOT_FOUND',
          `${ref.raw}: vault read ${ref.locator}: version deleted`,
          {
            where: ref.raw,
          },
        );
      }
      if (!isRecord(meta) || typeof meta.version !== 'number')
        return bad('KV v2 answer without metadata.version');
      return { value: { kind: 'map', data: data.data }, version: `kv2:${meta.version}` };
    }
    const version = `fp:${fingerprint(canonicalJson(data))}`;
    const leaseId = typeof body.lease_id === 'string' ? body.lease_id : '';
    const ttl = typeof body.lease_duration === 'number' ? body.lease_duration : 0;
    if (leaseId !== '' && ttl > 0) {
      this.#trackLease(leaseId, ttl * 1000);
      const lease: Lease = {
        id: leaseId,
        ttlMs: ttl * 1000,
        renewable: body.renewable === true,
        issuedAt: this.#now(),
      };
      return { value: { kind: 'map', data }, version, lease };
    }
    return { value: { kind: 'map', data }, version };
  }

  /**
   * Extend a dynamic secret's lease by its own TTL. Throws SK_ERR_LEASE_NOT_RENEWABLE when Vault
   * refuses or caps the extension (max TTL near): the caller then fetches a new set of credentials
   * while the current ones are still valid.
   */
  async renew(lease: Lease, ctx: ProviderContext): Promise<Lease> {
    // Several secrets can hold the same lease (`database/creds/app#username` and `…#password`):
    // they share one renewal, and its outcome, so they never drift onto different credential sets.
    const now = this.#now();
    const prev = this.#renewals.get(lease.id);
    if (prev && now - prev.at < shareWindow(lease.ttlMs)) return prev.outcome;
    for (const [id, r] of this.#renewals) if (now - r.at > r.ttlMs) this.#renewals.delete(id);
    const outcome = this.#renewOnce(lease, ctx);
    this.#renewals.set(lease.id, { at: now, ttlMs: lease.ttlMs, outcome });
    outcome.catch(() => {});
    return outcome;
  }

  async #renewOnce(lease: Lease, ctx: ProviderContext): Promise<Lease> {
    const where = `lease ${leaseName(lease.id)}`;
    if (!lease.renewable) {
      throw new SkError('SK_ERR_LEASE_NOT_RENEWABLE', `${where}: vault issued it as not renewable`, {
        where,
      });
    }
    const increment = Math.max(1, Math.round(lease.ttlMs / 1000));
    let body: unknown;
    try {
      body = await this.#call(ctx, 'PUT', 'sys/leases/renew', { lease_id: lease.id, increment }, where);
    } catch (e) {
      if (
        e instanceof SkError &&
        (e.code === 'SK_ERR_BACKEND_DENIED' ||
          e.code === 'SK_ERR_SOURCE_NOT_FOUND' ||
          e.code === 'SK_ERR_BACKEND_RESPONSE')
      ) {
        // Expired or revoked: Vault answers 400/403/404 here; a new fetch is the way out.
        this.#leases.delete(lease.id);
        throw new SkError(
          'SK_ERR_LEASE_NOT_RENEWABLE',
          `${where}: vault sys/leases/renew refused: ${e.message}`,
          {
            where,
            cause: e,
          },
        );
      }
      throw e;
    }
    this.stats.leaseRenewals++;
    if (!isRecord(body) || typeof body.lease_duration !== 'number') {
      throw new SkError(
        'SK_ERR_BACKEND_RESPONSE',
        `${where}: vault sys/leases/renew: answer without lease_duration`,
        {
          where,
        },
      );
    }
    if (this.#leases.has(lease.id)) this.#leases.set(lease.id, this.#now() + body.lease_duration * 1000);
    if (body.lease_duration < increment || body.renewable === false) {
      throw new SkError(
        'SK_ERR_LEASE_NOT_RENEWABLE',
        `${where}: vault capped the renewal at ${body.lease_duration}s of ${increment}s asked (max TTL reached); fetching new credentials`,
        { where },
      );
    }
    return { id: lease.id, ttlMs: body.lease_duration * 1000, renewable: true, issuedAt: this.#now() };
  }

  async close(ctx: ProviderContext): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#renewTimer) clearTimeout(this.#renewTimer);
    this.#renewTimer = undefined;
    if (!this.#settings.revokeOnShutdown || !this.#token) return;
    // The agent's signal is already aborted when it closes providers: revoke under a short deadline
    // of our own. Best effort: a failed revoke only means the lease runs out on its own.
    const revokeCtx: ProviderContext = { log: ctx.log, signal: AbortSignal.timeout(5000) };
    for (const [id, end] of this.#leases) {
      if (end <= this.#now()) continue; // ran out already: nothing to revoke
      try {
        await this.#call(revokeCtx, 'PUT', 'sys/leases/revoke', { lease_id: id }, `lease ${leaseName(id)}`, {
          retries: 0,
        });
        ctx.log.info({ lease: leaseName(id) }, 'vault lease revoked on shutdown');
      } catch (e) {
        ctx.log.warn({ lease: leaseName(id), code: (e as SkError).code }, 'vault lease revoke failed');
      }
    }
    this.#leases.clear();
  }

  /** Remember a lease for revokeOnShutdown; forget those that ran out, so re-fetches do not pile up. */
  #trackLease(id: string, ttlMs: number): void {
    const now = this.#now();
    for (const [k, end] of this.#leases) if (end <= now) this.#leases.delete(k);
    this.#leases.set(id, now + ttlMs);
  }

  // ---- mounts ----

  /** The mount a path lives on (cached per mount), or null when it cannot be told (no access). */
  async #mountOf(ref: SecretRef, ctx: ProviderContext): Promise<MountInfo | null> {
    const locator = ref.locator;
    const known = this.#knownMount(locator);
    if (known !== undefined) return known;
    // The first sync asks for every secret at once, mostly on one mount: wait for the lookups already
    // in flight, which likely answer for this path too, instead of sending one lookup per secret.
    if (this.#mountLookups.size > 0) {
      await Promise.allSettled(this.#mountLookups);
      const learnt = this.#knownMount(locator);
      if (learnt !== undefined) return learnt;
    }
    const lookup = this.#lookupMount(ref, ctx);
    this.#mountLookups.add(lookup);
    try {
      return await lookup;
    } finally {
      this.#mountLookups.delete(lookup);
    }
  }

  /** The longest known mount containing the path (mounts can nest: secret/ and secret/team/). */
  #knownMount(locator: string): MountInfo | null | undefined {
    let best: MountInfo | undefined;
    for (const [prefix, info] of this.#mounts) {
      if (info && locator.startsWith(prefix) && prefix.length > (best?.path.length ?? 0)) best = info;
    }
    return best ?? this.#mounts.get(`?${locator}`);
  }

  async #lookupMount(ref: SecretRef, ctx: ProviderContext): Promise<MountInfo | null> {
    const locator = ref.locator;
    let body: unknown;
    try {
      // Errors name the ref, like the read's: the lookup is the first call a fetch makes.
      body = await this.#call(ctx, 'GET', `sys/internal/ui/mounts/${locator}`, undefined, ref.raw);
    } catch (e) {
      // No permission to look, or an old server: read the path as written. Real errors (auth,
      // unavailable) surface here already and are the same for the read itself.
      if (
        e instanceof SkError &&
        (e.code === 'SK_ERR_BACKEND_DENIED' || e.code === 'SK_ERR_SOURCE_NOT_FOUND')
      ) {
        this.#mounts.set(`?${locator}`, null);
        return null;
      }
      throw e;
    }
    const d = isRecord(body) && isRecord(body.data) ? body.data : undefined;
    if (!d || typeof d.path !== 'string' || d.path === '') {
      this.#mounts.set(`?${locator}`, null);
      return null;
    }
    const opts = isRecord(d.options) ? d.options : {};
    const type = typeof d.type === 'string' ? d.type : '';
    const kvVersion =
      type === 'kv' || type === 'generic' ? (String(opts.version) === '2' ? 2 : 1) : undefined;
    const info: MountInfo = { path: d.path.endsWith('/') ? d.path : `${d.path}/`, type, kvVersion };
    this.#mounts.set(info.path, info);
    return info;
  }

  // ---- auth ----

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
      const body = await this.#raw(
        ctx,
        'GET',
        'auth/token/lookup-self',
        undefined,
        'vault token',
        token,
      ).catch((e: unknown) => {
        throw authError(e, `vault token auth (${this.#settings.tokenFile ?? 'VAULT_TOKEN'})`);
      });
      const d = isRecord(body) && isRecord(body.data) ? body.data : {};
      const ttl = typeof d.ttl === 'number' ? d.ttl : 0;
      this.stats.logins++;
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
    const body = await this.#raw(ctx, 'POST', `${this.#authPath}/login`, payload, what, undefined).catch(
      (e: unknown) => {
        throw authError(e, what);
      },
    );
    const auth = isRecord(body) && isRecord(body.auth) ? body.auth : undefined;
    if (!auth || typeof auth.client_token !== 'string' || auth.client_token === '') {
      throw new SkError('SK_ERR_BACKEND_RESPONSE', `${what}: the answer has no auth.client_token`, {
        where: this.#authPath,
      });
    }
    const ttl = typeof auth.lease_duration === 'number' ? auth.lease_duration : 0;
    this.stats.logins++;
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
    this.#renewTimer = setTimeout(() => {
      void this.#renewToken(t, ctx);
    }, delay);
    this.#renewTimer.unref();
  }

  /** Renew the token; when it cannot be renewed, drop it so the next request logs in again. */
  async #renewToken(t: TokenState, ctx: ProviderContext): Promise<void> {
    if (this.#token !== t || this.#closed) return;
    if (t.renewable) {
      try {
        const body = await this.#raw(
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
          this.stats.tokenRenewals++;
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
    this.#tokenCheck = this.#raw(
      ctx,
      'GET',
      'auth/token/lookup-self',
      undefined,
      'vault token lookup-self',
      t.token,
    )
      .then(() => false)
      .catch((e: unknown) => isHttp(e) && (e.status === 403 || e.status === 401))
      .finally(() => {
        this.#tokenCheck = undefined;
      });
    return this.#tokenCheck;
  }

  // ---- HTTP ----

  /**
   * An authenticated call with bounded retries. A 403 triggers one token check (rate-limited) and,
   * when the token is dead, one new login and one more try; never a login per retry.
   */
  async #call(
    ctx: ProviderContext,
    method: 'GET' | 'PUT' | 'POST',
    path: string,
    body: Record<string, unknown> | undefined,
    where: string,
    opts: { retries?: number } = {},
  ): Promise<unknown> {
    const t = await this.#ensureToken(ctx);
    try {
      return await this.#raw(ctx, method, path, body, where, t.token, opts);
    } catch (e) {
      if (isHttp(e) && e.status === 403 && (await this.#tokenIsDead(t, ctx))) {
        if (this.#token === t) this.#token = undefined;
        const fresh = await this.#ensureToken(ctx);
        try {
          return await this.#raw(ctx, method, path, body, where, fresh.token, opts);
        } catch (e2) {
          throw mapError(e2, method, path, where);
        }
      }
      throw mapError(e, method, path, where);
    }
  }

  /** One request with retries on 429/5xx/network errors; throws VaultHttpError or the network error. */
  async #raw(
    ctx: ProviderContext,
    method: 'GET' | 'PUT' | 'POST',
    path: string,
    body: Record<string, unknown> | undefined,
    where: string,
    token: string | undefined,
    opts: { retries?: number } = {},
  ): Promise<unknown> {
    const client = await this.#getClient();
    const retries = opts.retries ?? this.#retry.retries;
    return pRetry(
      async () => {
        if (ctx.signal.aborted) throw new AbortError('aborted');
        this.stats.requests++;
        try {
          return await this.#limiter.run(() =>
            client.request({
              path: `/${path}`,
              method,
              ...(body ? { json: body } : {}),
              headers: token ? { 'X-Vault-Token': token } : {},
              timeout: this.#timeoutMs,
            }),
          );
        } catch (e) {
          const http = toHttp(e);
          if (http) {
            if (!retryableStatus(http.status)) throw new AbortError(httpCarrier(http));
            throw httpCarrier(http);
          }
          throw e;
        }
      },
      {
        retries,
        minTimeout: this.#retry.minTimeoutMs,
        maxTimeout: this.#retry.maxTimeoutMs,
        factor: 2,
        randomize: true,
        signal: ctx.signal,
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
      const inner =
        e instanceof AbortError && isHttp((e as { originalError?: unknown }).originalError)
          ? (e as { originalError?: unknown }).originalError
          : e;
      throw inner;
    });
  }
}

// ---- helpers ----

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

function retryableStatus(status: number): boolean {
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

function httpCarrier(h: VaultHttpError): HttpCarrier {
  return h instanceof HttpCarrier ? h : new HttpCarrier(h.status, h.errors);
}

function isHttp(e: unknown): e is VaultHttpError {
  return e instanceof HttpCarrier;
}

/** node-vault's ApiResponseError → status + error strings. */
function toHttp(e: unknown): VaultHttpError | undefined {
  if (e instanceof HttpCarrier) return e;
  const r = (e as { response?: { statusCode?: unknown; body?: unknown } } | null)?.response;
  if (!r || typeof r.statusCode !== 'number') return undefined;
  const errs = isRecord(r.body) && Array.isArray(r.body.errors) ? r.body.errors.map((x) => String(x)) : [];
  return { status: r.statusCode, errors: errs };
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

function authError(e: unknown, what: string): SkError {
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

function networkError(e: unknown, where: string): SkError {
  const err = e as { code?: string; message?: string; name?: string } | null;
  if (err?.name === 'AbortError') {
    return new SkError('SK_ERR_BACKEND_UNAVAILABLE', `${where}: vault request aborted`, { where, cause: e });
  }
  const code = err?.code ?? 'error';
  const why =
    code === 'ECONNABORTED' || code === 'ETIMEDOUT'
      ? 'timed out'
      : /CERT|SELF_SIGNED|VERIFY|^ERR_TLS|^ERR_SSL|^EPROTO$/.test(code)
        ? `TLS failed (${code})`
        : `unreachable (${code})`;
  return new SkError('SK_ERR_BACKEND_UNAVAILABLE', `${where}: vault ${why}`, { where, cause: e });
}

function mapError(e: unknown, method: string, path: string, where: string): SkError {
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

/**
 * Within this time of a lease being issued or renewed, another fetch/renew of the same path/lease
 * shares the outcome: a third of the TTL, so a shared result still has two thirds to run.
 */
function shareWindow(ttlMs: number): number {
  return ttlMs / 3;
}

/** Lease ids are not secret, but can be long; keep the path part for logs and messages. */
function leaseName(id: string): string {
  const slash = id.lastIndexOf('/');
  return slash > 0 ? `${id.slice(0, slash)}/…${id.slice(-6)}` : id;
}

/** JSON with sorted keys, so the hash of a map does not depend on key order. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isRecord(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
