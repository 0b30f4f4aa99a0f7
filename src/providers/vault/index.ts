import { SkError } from '../../errors.js';
import { fingerprint } from '../../fingerprint.js';
import { isRecord } from '../../is-record.js';
import type { SecretRef } from '../../refs.js';
import type { Backends } from '../../spec.js';
import type { FetchResult, Lease, Provider, ProviderContext, ProviderFactory } from '../types.js';
import { VaultAuth } from './auth.js';
import { type VaultSettings, vaultBackend } from './descriptor.js';
import { type RetryPolicy, VAULT_RETRY, VaultHttp, type VaultStats } from './http.js';

export { VAULT_DEFAULT_SA_TOKEN_FILE } from './auth.js';
export { sanitiseVaultText, VAULT_DEFAULT_TIMEOUT_MS, VAULT_MAX_IN_FLIGHT, VAULT_RETRY } from './http.js';

/**
 * The `vault:` provider (HashiCorp Vault and OpenBao, over Node's own http/https):
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
 *
 * Three seams: http.ts (the client, retries, error mapping), auth.ts (login and token lifetime, the
 * authenticated call), and this file (reads, KV mounts, dynamic secrets and their leases).
 */

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
  retry?: RetryPolicy;
}

interface MountInfo {
  /** Mount path with a trailing slash, e.g. `secret/`. */
  readonly path: string;
  readonly type: string;
  readonly kvVersion: 1 | 2 | undefined;
}

/** The Vault/OpenBao provider. One instance per agent; all secrets share its login. */
export class VaultProvider implements Provider {
  readonly name = 'vault';
  readonly #settings: Readonly<VaultSettings>;
  readonly #now: () => number;
  readonly #http: VaultHttp;
  readonly #auth: VaultAuth;
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
  readonly stats: VaultStats = { requests: 0, logins: 0, tokenRenewals: 0, leaseRenewals: 0 };

  /** The most requests that were in flight at once (tests, bench). */
  get peakInFlight(): number {
    return this.#http.peakInFlight;
  }

  constructor(settings: Readonly<VaultSettings>, opts: VaultProviderOptions = {}) {
    const env = opts.env ?? process.env;
    this.#settings = settings;
    this.#now = opts.now ?? Date.now;
    this.#http = new VaultHttp(settings, env, opts.retry ?? VAULT_RETRY, this.stats);
    this.#auth = new VaultAuth(settings, env, this.#now, this.#http, this.stats);
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
      return this.#toResult(
        ref,
        await this.#auth.call(ctx, 'GET', `${path}${query}`, undefined, ref.raw),
        true,
      );
    }
    // A dynamic secret read by several secrets (one per #key) must be one credential set: a read of
    // the same path shortly after another returns the set just issued instead of issuing a new one.
    const key = `${path}${query}`;
    const recent = this.#issued.get(key);
    if (recent) {
      const lease = (await recent.result.catch(() => undefined))?.lease;
      if (lease && this.#now() - lease.issuedAt < shareWindow(lease.ttlMs)) return recent.result;
    }
    const result = this.#auth
      .call(ctx, 'GET', key, undefined, ref.raw)
      .then((body) => this.#toResult(ref, body, false));
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
      body = await this.#auth.call(ctx, 'PUT', 'sys/leases/renew', { lease_id: lease.id, increment }, where);
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
    this.#auth.close();
    try {
      await this.#revokeOnClose(ctx);
    } finally {
      this.#http.destroy();
    }
  }

  async #revokeOnClose(ctx: ProviderContext): Promise<void> {
    if (!this.#settings.revokeOnShutdown || !this.#auth.hasToken) return;
    // The agent's signal is already aborted when it closes providers: revoke under a short deadline
    // of our own. Best effort: a failed revoke only means the lease runs out on its own.
    const revokeCtx: ProviderContext = { log: ctx.log, signal: AbortSignal.timeout(5000) };
    for (const [id, end] of this.#leases) {
      if (end <= this.#now()) continue; // ran out already: nothing to revoke
      try {
        await this.#auth.call(
          revokeCtx,
          'PUT',
          'sys/leases/revoke',
          { lease_id: id },
          `lease ${leaseName(id)}`,
          {
            retries: 0,
          },
        );
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
      body = await this.#auth.call(ctx, 'GET', `sys/internal/ui/mounts/${locator}`, undefined, ref.raw);
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
}

// ---- helpers ----

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
