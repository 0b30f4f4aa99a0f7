import { formatDuration } from './duration.js';
import { type ErrorCode, SkError, toSkError, toValueSafeSkError } from './errors.js';
import { fingerprint } from './fingerprint.js';
import type { Logger } from './log.js';
import type { Notifier } from './notify.js';
import type { ProviderRegistry } from './providers/registry.js';
import { selectKey } from './providers/select-key.js';
import type { FetchResult, Lease, Provider, ProviderContext } from './providers/types.js';
import { formatRef, type SecretRef } from './refs.js';
import { renderSecret } from './render/index.js';
import type { ResolvedSecret, ResolvedSpec } from './spec.js';
import { AtomicWriter, type SecretStatus, type StatusDocument } from './writer.js';

/** What one write of the file set did. */
export interface WriteReport {
  /** The engine's first write (the initial population): no notification is sent for it. */
  first: boolean;
  /** Relative paths added, changed or removed; empty when the files were already up to date. */
  changedFiles: string[];
  /** Names of the secrets whose files changed. */
  changedSecrets: string[];
  /** Epoch ms of the write. */
  at: number;
}

/** The timer functions the engine uses; tests inject a manual clock. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The backend calls the engine times for {@link EngineObserver.backendCall}. */
export type BackendOp = 'fetch' | 'fetchMany' | 'renew';

/**
 * What the engine tells an observer as it works (the agent's metrics, sidecar/metrics.ts). Hooks are
 * synchronous and optional; one that throws is ignored. They carry secret and provider names, times
 * and SK_ERR codes, never a value or a ref.
 */
export interface EngineObserver {
  /** A provider was created (its first use); e.g. to read its counters at scrape time. */
  providerCreated?(name: string, provider: Provider): void;
  /** One call to a provider ended: `fetch` (one source), `fetchMany` (a batch), `renew` (a lease). */
  backendCall?(provider: string, op: BackendOp, seconds: number, error: ErrorCode | undefined): void;
  /** A secret was fetched, rendered and written (unchanged content included). */
  refreshed?(secret: string, at: number): void;
  /** A secret failed to refresh during rotation; its last good file is kept. */
  refreshFailed?(secret: string, code: ErrorCode, at: number): void;
}

export interface EngineOptions {
  readonly registry: ProviderRegistry;
  readonly log: Logger;
  /** After every write, the first included. */
  readonly onWrite?: (report: WriteReport) => void;
  /** A secret failed to refresh during rotation (its last good file is kept). */
  readonly onSecretError?: (secret: string, error: SkError) => void;
  /** A failure the agent should exit on (max-stale with action fail). Without it, it is only logged. */
  readonly onFatal?: (error: SkError) => void;
  /** Told about changed files after every write but the first; closed by {@link Engine.stop}. */
  readonly notifier?: Notifier;
  /** Clock (epoch ms); default Date.now. */
  readonly now?: () => number;
  /** Random source in [0, 1) for jitter; default Math.random. */
  readonly random?: () => number;
  /** Timer functions; default the global ones. */
  readonly timers?: Timers;
  /** Watch events arriving within this window are fetched together (default 20 ms). */
  readonly coalesceMs?: number;
  /** Told about refreshes, failures and backend calls (metrics). */
  readonly observer?: EngineObserver;
  /**
   * An overall deadline (epoch ms, e.g. `agent --once`'s): no backend call runs past it, whatever
   * `fetchTimeout` says. Default none.
   */
  readonly deadline?: number;
}

/** One backend call in progress (a fetch, a batch fetch, a lease renewal). No values. */
export interface BackendCall {
  /** The provider called, e.g. `vault`. */
  readonly provider: string;
  readonly op: 'fetch' | 'renew';
  /** The call for people: `vault fetch of vault:secret/data/app#password`. */
  readonly what: string;
  /** The secrets waiting for it. */
  readonly secrets: readonly string[];
  /** When it started, epoch ms. */
  readonly since: number;
  /** When it is ended if still running, epoch ms. */
  readonly deadline: number;
  /** Which setting set the deadline. */
  readonly limit: 'fetchTimeout' | 'agent.onceTimeout';
}

/**
 * A call still running after this long (or half its deadline, if shorter) is shown in the status
 * file before it ends, so a stuck backend is visible while it is stuck.
 */
export const SLOW_CALL_MS = 1000;

/** Renew a lease once this fraction of its TTL has passed. */
export const LEASE_RENEW_AT = 2 / 3;
/** Re-fetch a lease that cannot be renewed (further) once this fraction of its TTL has passed. */
export const LEASE_REFETCH_AT = 0.85;
/** A renewal granting less than this fraction of the original TTL means the lease's max TTL is near. */
const LEASE_SHORT_FRACTION = 0.9;
/** The shortest retry delay, whatever `backoff.initial` says: a failing secret never spins. */
export const MIN_RETRY_MS = 100;
/** setTimeout's limit; longer delays fire early, which only means an early refresh. */
const MAX_DELAY = 2 ** 31 - 1;

type Outcome =
  | { readonly ok: true; readonly bytes: Buffer; readonly result: FetchResult }
  | { readonly ok: false; readonly error: SkError };

type Job = 'fetch' | 'renew';

type Fetched = Array<FetchResult | SkError>;

interface SecretState {
  readonly secret: ResolvedSecret;
  /** The ref without its `#key` ({@link sourceKey}): secrets with the same source are peers. */
  readonly source: string;
  /** Last good rendered bytes: what is on disk. */
  bytes?: Buffer;
  version?: string;
  fetchedAt?: number;
  /** When the content on disk last changed (or this process first wrote it). */
  changedAt?: number;
  lease?: Lease;
  /** TTL of the lease as first granted by the fetch. */
  leaseBaseTtlMs?: number;
  /** The lease cannot be renewed further: re-fetch near its end. */
  leaseFinal?: boolean;
  /** Consecutive failures. */
  failures: number;
  failingSince?: number;
  lastError?: { code: ErrorCode; message: string; at: number };
  stale: boolean;
  timer?: unknown;
  staleTimer?: unknown;
}

const defaultTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * The engine: fetch (providers) → select `#key` → render → write atomically → notify, then keep the
 * files current. See docs/rotation.md for the schedule.
 *
 * Fetches run concurrently, per backend: secrets due at about the same time (timers, watch bursts)
 * are fetched together, one rotation per backend, so a slow backend never delays another's secrets;
 * a secret's source is never in two fetches at once. Every backend call has a deadline
 * (`fetchTimeout`) that ends it: the provider gets an AbortSignal, and the engine stops waiting at the
 * deadline whether or not the provider honours it. Writes (the file set and the status file) run in
 * one serial queue, so the set is always written whole by one writer, and no write ever waits for a
 * fetch. Values live only in memory and in the output files: logs name secrets, refs and versions,
 * never values. (The field is `secretName`: `secret` is censored by the logger's redaction.)
 */
export class Engine {
  readonly #spec: ResolvedSpec;
  readonly #opts: EngineOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #timers: Timers;
  readonly #coalesceMs: number;
  readonly #writer: AtomicWriter;
  readonly #states: Map<string, SecretState>;
  /** Secrets reading the same source (same ref but for `#key`), by {@link SecretState.source}. */
  readonly #bySource = new Map<string, SecretState[]>();
  readonly #providers = new Map<string, Provider>();
  readonly #abort = new AbortController();
  readonly #unwatch: Array<() => Promise<void> | void> = [];
  /** The write queue: file set and status writes, one at a time. */
  #chain: Promise<unknown> = Promise.resolve();
  /** Syncs and rotations in progress (fetching or waiting to write). */
  readonly #work = new Set<Promise<unknown>>();
  /** Sources being fetched or renewed now (by how many syncs/rotations): their due jobs wait. */
  readonly #busy = new Map<string, number>();
  /** Backend calls in progress. */
  readonly #calls = new Set<BackendCall>();
  readonly #queue = new Map<string, Job>();
  #flushTimer: unknown;
  #wrote = false;
  #started = false;
  #stopped = false;
  #fatal = false;

  constructor(spec: ResolvedSpec, opts: EngineOptions) {
    this.#spec = spec;
    this.#opts = opts;
    this.#log = opts.log;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#timers = opts.timers ?? defaultTimers;
    this.#coalesceMs = opts.coalesceMs ?? 20;
    this.#writer = new AtomicWriter({
      dir: spec.output.dir,
      uid: spec.output.uid,
      gid: spec.output.gid,
      log: opts.log,
    });
    this.#states = new Map(
      spec.secrets.map((s) => [
        s.name,
        { secret: s, source: sourceKey(s.ref), failures: 0, stale: false } satisfies SecretState,
      ]),
    );
    for (const st of this.#states.values()) {
      const group = this.#bySource.get(st.source);
      if (group) group.push(st);
      else this.#bySource.set(st.source, [st]);
    }
  }

  /**
   * Fetch every secret, render, and write the whole set atomically. All or nothing: if any secret
   * fails, nothing is written and the first SkError (in declaration order) is thrown.
   */
  syncOnce(): Promise<WriteReport> {
    return this.#track(this.#syncAll());
  }

  /** {@link syncOnce}, then keep rotating (timers, watches, leases) until {@link stop}. */
  async start(): Promise<WriteReport> {
    if (this.#started || this.#stopped)
      throw new SkError('SK_ERR_INTERNAL', 'the engine was already started');
    this.#started = true;
    try {
      // Providers and watches first, so a change made during the first fetch is not missed.
      for (const st of this.#states.values()) this.#provider(st.secret);
      this.#startWatches();
      return await this.syncOnce();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /**
   * Stop timers and watches, wait for work in progress, close the providers and the notifier (a
   * notification still in its debounce window is dropped: it would reach an app that is stopping,
   * after "stopped", and its timer kept the process alive). Idempotent.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#flushTimer !== undefined) this.#timers.clearTimeout(this.#flushTimer);
    for (const st of this.#states.values()) this.#clearTimers(st);
    this.#abort.abort();
    await Promise.allSettled(this.#unwatch.map(async (u) => u()));
    await this.idle();
    const ctx = (name: string) => this.#ctx(name);
    await Promise.allSettled([...this.#providers].map(async ([name, p]) => p.close?.(ctx(name))));
    await this.#opts.notifier?.close().catch(() => {});
  }

  /** Resolves once no fetch, renewal or write is in progress (tests, graceful shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const c = this.#chain;
      await Promise.allSettled([c, ...this.#work]);
      if (c === this.#chain && this.#work.size === 0) return;
    }
  }

  /** The backend calls in progress, oldest first (no values). */
  calls(): BackendCall[] {
    return [...this.#calls].sort((a, b) => a.since - b.since);
  }

  /** The status document as last written (no values). */
  status(): StatusDocument {
    const secrets: Record<string, SecretStatus> = {};
    for (const [name, st] of this.#states) {
      const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());
      secrets[name] = {
        file: st.secret.file,
        ...(st.version !== undefined ? { version: st.version } : {}),
        ...(st.bytes ? { fingerprint: fingerprint(st.bytes) } : {}),
        ...(st.fetchedAt !== undefined ? { fetchedAt: iso(st.fetchedAt)! } : {}),
        ...(st.changedAt !== undefined ? { changedAt: iso(st.changedAt)! } : {}),
        ...(st.lastError ? { lastError: { ...st.lastError, at: iso(st.lastError.at)! } } : {}),
        ...(st.stale ? { stale: true } : {}),
        ...this.#inFlightStatus(name, iso),
        ...(st.lease
          ? {
              lease: {
                ttlSeconds: Math.round(st.lease.ttlMs / 1000),
                expiresAt: iso(st.lease.issuedAt + st.lease.ttlMs)!,
                renewable: st.lease.renewable && !st.leaseFinal,
              },
            }
          : {}),
      };
    }
    return {
      apiVersion: 'sidekey.io/v1',
      ready: [...this.#states.values()].every((s) => s.bytes !== undefined),
      updatedAt: new Date(this.#now()).toISOString(),
      secrets,
    };
  }

  #inFlightStatus(
    name: string,
    iso: (t: number | undefined) => string | undefined,
  ): Partial<Pick<SecretStatus, 'inFlight'>> {
    let oldest: BackendCall | undefined;
    for (const c of this.#calls)
      if (c.secrets.includes(name) && (!oldest || c.since < oldest.since)) oldest = c;
    return oldest ? { inFlight: { call: oldest.what, since: iso(oldest.since)! } } : {};
  }

  // --- the write queue, the work in progress ---

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn, fn);
    this.#chain = run.catch(() => {});
    return run;
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#work.add(p);
    const done = () => this.#work.delete(p);
    p.then(done, done);
    return p;
  }

  #enqueue(name: string, job: Job, delayMs: number): void {
    if (this.#stopped) return;
    if (this.#queue.get(name) !== 'fetch') this.#queue.set(name, job);
    if (this.#flushTimer !== undefined) return;
    this.#flushTimer = this.#timers.setTimeout(() => {
      this.#flushTimer = undefined;
      this.#flush();
    }, delayMs);
  }

  /**
   * Start the due jobs whose sources are not being fetched already: one rotation per backend. Jobs of
   * busy sources stay queued until their fetch ends ({@link #release} flushes again).
   */
  #flush(): void {
    if (this.#stopped) return;
    const byProvider = new Map<string, Map<string, Job>>();
    for (const [name, job] of this.#queue) {
      const st = this.#states.get(name)!;
      if (this.#busy.has(st.source)) continue;
      this.#queue.delete(name);
      const p = st.secret.ref.provider;
      const jobs = byProvider.get(p) ?? new Map<string, Job>();
      byProvider.set(p, jobs);
      jobs.set(name, job);
    }
    for (const jobs of byProvider.values()) void this.#track(this.#rotate(jobs)).catch(() => {});
  }

  #hold(states: readonly SecretState[]): void {
    for (const st of states) this.#busy.set(st.source, (this.#busy.get(st.source) ?? 0) + 1);
  }

  #release(states: readonly SecretState[]): void {
    for (const st of states) {
      const n = (this.#busy.get(st.source) ?? 1) - 1;
      if (n > 0) this.#busy.set(st.source, n);
      else this.#busy.delete(st.source);
    }
    if (this.#queue.size > 0 && this.#flushTimer === undefined) this.#flush();
  }

  // --- one full sync ---

  async #syncAll(): Promise<WriteReport> {
    const states = [...this.#states.values()];
    this.#hold(states);
    try {
      const outcomes = await this.#fetch(states);
      for (const st of states) {
        const o = outcomes.get(st.secret.name)!;
        if (!o.ok) throw o.error;
      }
      return await this.#exclusive(() => this.#writeAll(states, outcomes));
    } finally {
      this.#release(states);
    }
  }

  async #writeAll(states: readonly SecretState[], outcomes: Map<string, Outcome>): Promise<WriteReport> {
    const payload = new Map(
      states.map((st) => {
        const o = outcomes.get(st.secret.name) as Outcome & { ok: true };
        return [st.secret.file, { data: o.bytes, mode: st.secret.mode }];
      }),
    );
    const res = await this.#writer.write(payload);
    const at = this.#now();
    for (const st of states) this.#commit(st, outcomes.get(st.secret.name) as Outcome & { ok: true }, at);
    await this.#writeStatusQuietly();
    const report = this.#report(res.changed, at);
    this.#log.info(
      {
        dir: this.#spec.output.dir,
        secrets: states.map((s) => s.secret.name),
        changedFiles: report.changedFiles,
        versions: Object.fromEntries(states.map((s) => [s.secret.name, s.version])),
      },
      report.first ? 'secrets written' : 'secrets synced',
    );
    this.#afterWrite(report);
    if (this.#started && !this.#stopped) for (const st of states) this.#scheduleNext(st);
    return report;
  }

  // --- rotation ---

  /** Renew or re-fetch the given secrets (all of one backend), then write the set once. */
  async #rotate(jobs: Map<string, Job>): Promise<void> {
    if (this.#stopped || jobs.size === 0) return;

    // Secrets reading one source move together: `database/creds/app#username` and `#password` must
    // never come from two different fetches (two different credential sets).
    const expanded = new Map<SecretState, Job>();
    for (const [name, job] of jobs) {
      for (const peer of this.#peersOf(this.#states.get(name)!))
        if (expanded.get(peer) !== 'fetch') expanded.set(peer, job);
    }
    const held = [...expanded.keys()];
    this.#hold(held);
    try {
      await this.#rotateHeld(expanded);
    } finally {
      this.#release(held);
    }
  }

  async #rotateHeld(expanded: Map<SecretState, Job>): Promise<void> {
    const renewals = new Map<string, Promise<Lease | undefined>>();
    // Renewals run side by side: one slow lease never holds up another.
    const renewed = await Promise.all(
      [...expanded].map(async ([st, job]) => job === 'renew' && (await this.#renew(st, renewals))),
    );
    const toFetch = [...expanded.keys()].filter((_, i) => !renewed[i]);
    const statusDirty = renewed.some(Boolean);
    // A peer whose lease could not be renewed takes its whole group to the fetch.
    for (const st of [...toFetch]) {
      for (const peer of this.#peersOf(st)) if (!toFetch.includes(peer)) toFetch.push(peer);
    }
    if (toFetch.length === 0) {
      if (statusDirty) await this.#exclusive(() => this.#writeStatusQuietly());
      return;
    }

    const outcomes = await this.#fetch(toFetch);
    if (this.#stopped) return;
    await this.#exclusive(() => this.#applyRotation(toFetch, outcomes));
  }

  /** Write the set with what a rotation fetched (under the write queue), record failures. */
  async #applyRotation(toFetch: readonly SecretState[], outcomes: Map<string, Outcome>): Promise<void> {
    // A dynamic credential's secrets are updated together or not at all: a new #username next to an
    // old #password would be a broken pair. Static sources (a file, a KV entry) hold independent
    // values: one broken key fails only the secrets that use it.
    for (const st of toFetch) {
      if (!this.#dynamicSource(st, outcomes)) continue;
      const failed = this.#peersOf(st).find((p) => !outcomes.get(p.secret.name)?.ok);
      if (!failed || failed === st || !outcomes.get(st.secret.name)?.ok) continue;
      const cause = (outcomes.get(failed.secret.name) as Outcome & { ok: false }).error;
      outcomes.set(st.secret.name, {
        ok: false,
        error: new SkError(
          cause.code,
          `${st.secret.ref.raw}: not updated, because secret "${failed.secret.name}" of the same source failed (${cause.code})`,
          { where: st.secret.ref.raw },
        ),
      });
    }
    const good = toFetch.filter((st) => outcomes.get(st.secret.name)!.ok);
    const bad = toFetch.filter((st) => !outcomes.get(st.secret.name)!.ok);
    const at = this.#now();

    let changed: readonly string[] = [];
    if (good.length > 0) {
      // The whole set, with the last good bytes of everything not fetched (or failing) now.
      const payload = new Map<string, { data: Buffer; mode: number }>();
      for (const st of this.#states.values()) {
        const o = outcomes.get(st.secret.name);
        const data = o?.ok ? o.bytes : st.bytes;
        if (data) payload.set(st.secret.file, { data, mode: st.secret.mode });
      }
      try {
        changed = (await this.#writer.write(payload)).changed;
        for (const st of good) {
          this.#commit(st, outcomes.get(st.secret.name) as Outcome & { ok: true }, at);
          this.#scheduleNext(st);
        }
      } catch (e) {
        const err = toSkError(e, 'SK_ERR_WRITE');
        for (const st of good) this.#fail(st, err, at);
      }
    }
    for (const st of bad) this.#fail(st, (outcomes.get(st.secret.name) as Outcome & { ok: false }).error, at);

    await this.#writeStatusQuietly();
    if (changed.length > 0) {
      const report = this.#report(changed, at);
      this.#log.info(
        {
          changedFiles: report.changedFiles,
          changedSecrets: report.changedSecrets,
          versions: Object.fromEntries(report.changedSecrets.map((n) => [n, this.#states.get(n)!.version])),
        },
        'secrets rotated',
      );
      this.#afterWrite(report);
    }
  }

  /** Whether `st`'s source is a dynamic credential (leased now, or in what this fetch returned). */
  #dynamicSource(st: SecretState, outcomes: ReadonlyMap<string, Outcome>): boolean {
    return this.#peersOf(st).some((p) => {
      const o = outcomes.get(p.secret.name);
      return p.lease !== undefined || (o?.ok === true && o.result.lease !== undefined);
    });
  }

  /** The secrets reading the same source as `st`, itself included. */
  #peersOf(st: SecretState): readonly SecretState[] {
    return this.#bySource.get(st.source)!;
  }

  /**
   * Renew a lease; false when it cannot be renewed and the secret must be fetched anew. `renewals`
   * shares one renewal per lease id within a cycle (peers hold the same lease).
   */
  async #renew(st: SecretState, renewals: Map<string, Promise<Lease | undefined>>): Promise<boolean> {
    const provider = this.#providers.get(st.secret.ref.provider);
    const lease = st.lease;
    if (!provider?.renew || !lease) return false;
    let pending = renewals.get(lease.id);
    if (!pending) {
      pending = this.#callRenew(st.secret, provider, lease);
      renewals.set(lease.id, pending);
    }
    const renewed = await pending;
    if (!renewed) return false;
    st.lease = renewed;
    if (!renewed.renewable || renewed.ttlMs < (st.leaseBaseTtlMs ?? 0) * LEASE_SHORT_FRACTION)
      st.leaseFinal = true;
    this.#scheduleNext(st);
    return true;
  }

  async #callRenew(secret: ResolvedSecret, provider: Provider, lease: Lease): Promise<Lease | undefined> {
    const name = secret.ref.provider;
    const holders = this.#peersOf(this.#states.get(secret.name)!).map((p) => p.secret.name);
    try {
      const renewed = await this.#timed(name, 'renew', () =>
        this.#guard(
          name,
          'renew',
          `${name} lease renewal of ${secret.ref.raw}`,
          holders,
          secret.ref.raw,
          (ctx) => provider.renew!(lease, ctx),
        ),
      );
      this.#log.debug(
        { secretName: secret.name, ref: secret.ref.raw, ttlMs: renewed.ttlMs },
        'lease renewed',
      );
      return renewed;
    } catch (e) {
      const err = toValueSafeSkError(e, 'SK_ERR_BACKEND_RESPONSE', `${secret.ref.raw}: lease renewal`);
      // Reaching the max TTL is the normal end of a lease, not a failure.
      const level = err.code === 'SK_ERR_LEASE_NOT_RENEWABLE' ? 'info' : 'warn';
      this.#log[level](
        { secretName: secret.name, ref: secret.ref.raw, code: err.code, err: err.message },
        'lease renewal failed; fetching the secret anew',
      );
      return undefined;
    }
  }

  #commit(st: SecretState, o: Outcome & { ok: true }, at: number): void {
    if (!st.bytes?.equals(o.bytes)) st.changedAt = at;
    st.bytes = o.bytes;
    st.version = o.result.version;
    st.fetchedAt = at;
    st.failures = 0;
    st.failingSince = undefined;
    st.lastError = undefined;
    st.stale = false;
    if (st.staleTimer !== undefined) this.#timers.clearTimeout(st.staleTimer);
    st.staleTimer = undefined;
    const lease = o.result.lease;
    st.lease = lease && lease.ttlMs > 0 ? lease : undefined;
    st.leaseBaseTtlMs = st.lease?.ttlMs;
    st.leaseFinal = st.lease ? !st.lease.renewable : undefined;
    this.#observe((ob) => ob.refreshed?.(st.secret.name, at));
  }

  #fail(st: SecretState, err: SkError, at: number): void {
    const { secret } = st;
    st.failures++;
    st.lastError = { code: err.code, message: err.message, at };
    if (st.failures === 1) {
      st.failingSince = at;
      const after = this.#spec.maxStale.afterMs;
      // A rotation that was writing when stop() came still records its failures; no timer may outlive stop.
      if (after > 0 && !this.#stopped)
        st.staleTimer = this.#timers.setTimeout(() => this.#onStale(st), Math.min(after, MAX_DELAY));
    }
    this.#observe((ob) => ob.refreshFailed?.(secret.name, err.code, at));
    const delay = this.#backoff(st.failures);
    this.#log.warn(
      {
        secretName: secret.name,
        ref: secret.ref.raw,
        code: err.code,
        err: err.message,
        failures: st.failures,
        retryInMs: delay,
        ...(st.lease && at >= st.lease.issuedAt + st.lease.ttlMs ? { leaseExpired: true } : {}),
      },
      'refresh failed; keeping the last good file',
    );
    this.#schedule(st, 'fetch', delay);
    try {
      this.#opts.onSecretError?.(secret.name, err);
    } catch {
      /* a failing callback must not stop rotation */
    }
  }

  #onStale(st: SecretState): void {
    st.staleTimer = undefined;
    if (st.failures === 0 || this.#stopped) return;
    const { secret } = st;
    const err = new SkError(
      'SK_ERR_STALE',
      `secret "${secret.name}" (${secret.ref.raw}) could not be refreshed for ${formatDuration(
        this.#spec.maxStale.afterMs,
      )}; last error ${st.lastError?.code ?? 'unknown'}`,
      { where: secret.ref.raw },
    );
    if (this.#spec.maxStale.action === 'keep') {
      st.stale = true;
      this.#log.warn(
        { secretName: secret.name, ref: secret.ref.raw, code: err.code },
        `${err.message}; still serving it`,
      );
      void this.#exclusive(() => this.#writeStatusQuietly());
      return;
    }
    if (this.#fatal) return;
    this.#fatal = true;
    this.#log.error({ secretName: secret.name, ref: secret.ref.raw, code: err.code }, err.message);
    if (this.#opts.onFatal) this.#opts.onFatal(err);
  }

  // --- scheduling ---

  /** After a success: the next renewal or re-fetch of a lease, else the next refresh. */
  #scheduleNext(st: SecretState): void {
    const lease = st.lease;
    if (lease) {
      const provider = this.#providers.get(st.secret.ref.provider);
      const renew = !st.leaseFinal && provider?.renew !== undefined;
      const fraction = renew ? LEASE_RENEW_AT : LEASE_REFETCH_AT;
      // A quarter of the spec's jitter: spreads renewals without straying far from the fraction.
      const due = lease.issuedAt + this.#jitter(lease.ttlMs * fraction, this.#spec.jitter / 4);
      this.#schedule(st, renew ? 'renew' : 'fetch', Math.max(0, due - this.#now()));
      return;
    }
    if (st.secret.refreshMs > 0) {
      this.#schedule(st, 'fetch', this.#jitter(st.secret.refreshMs, this.#spec.jitter));
    } else if (st.timer !== undefined) {
      this.#timers.clearTimeout(st.timer);
      st.timer = undefined;
    }
  }

  #schedule(st: SecretState, job: Job, delayMs: number): void {
    if (this.#stopped || !this.#started) return;
    if (st.timer !== undefined) this.#timers.clearTimeout(st.timer);
    st.timer = this.#timers.setTimeout(
      () => {
        st.timer = undefined;
        this.#enqueue(st.secret.name, job, 0);
      },
      Math.min(Math.max(0, Math.round(delayMs)), MAX_DELAY),
    );
  }

  /** `ms` ± `fraction`·`ms`, uniformly. */
  #jitter(ms: number, fraction: number): number {
    return Math.round(ms * (1 + fraction * (2 * this.#random() - 1)));
  }

  /** initial·2^(n−1), capped at max, then reduced by up to `jitter` so failing secrets spread out. */
  #backoff(failures: number): number {
    const { initialMs, maxMs } = this.#spec.backoff;
    const base = Math.min(maxMs, initialMs * 2 ** Math.min(failures - 1, 40));
    return Math.max(MIN_RETRY_MS, Math.round(base * (1 - this.#spec.jitter * this.#random())));
  }

  #clearTimers(st: SecretState): void {
    if (st.timer !== undefined) this.#timers.clearTimeout(st.timer);
    if (st.staleTimer !== undefined) this.#timers.clearTimeout(st.staleTimer);
    st.timer = undefined;
    st.staleTimer = undefined;
  }

  // --- fetching ---

  #provider(secret: ResolvedSecret): Provider {
    const name = secret.ref.provider;
    let p = this.#providers.get(name);
    if (!p) {
      p = this.#opts.registry.get(name, `secrets.${secret.name}.ref`).create(this.#spec.backends);
      this.#providers.set(name, p);
      const created = p;
      this.#observe((ob) => ob.providerCreated?.(name, created));
    }
    return p;
  }

  /** The context of long-lived provider work (watches, close): aborted on stop only. */
  #ctx(provider: string): ProviderContext {
    return { signal: this.#abort.signal, log: this.#log.child({ provider }) };
  }

  /**
   * Run one backend call under its deadline: `fetchTimeout`, or the engine's overall deadline if that
   * comes first. The provider gets a signal that aborts at the deadline (and on stop); the engine
   * stops waiting at the deadline whatever the provider does, and the call fails with
   * SK_ERR_BACKEND_TIMEOUT naming it. A call still running after {@link SLOW_CALL_MS} (or half its
   * deadline) is written to the status file.
   */
  #guard<T>(
    provider: string,
    op: BackendCall['op'],
    what: string,
    secrets: readonly string[],
    where: string,
    run: (ctx: ProviderContext) => Promise<T>,
  ): Promise<T> {
    const since = this.#now();
    let timeoutMs = this.#spec.fetchTimeoutMs;
    let limit: BackendCall['limit'] = 'fetchTimeout';
    const overall = this.#opts.deadline;
    if (overall !== undefined && overall - since < timeoutMs) {
      timeoutMs = Math.max(1, overall - since);
      limit = 'agent.onceTimeout';
    }
    const call: BackendCall = { provider, op, what, secrets, since, deadline: since + timeoutMs, limit };
    const ctrl = new AbortController();
    const ctx: ProviderContext = {
      signal: ctrl.signal,
      deadline: call.deadline,
      log: this.#log.child({ provider }),
    };
    this.#calls.add(call);
    let timer: unknown;
    let slowTimer: unknown;
    let onStop: (() => void) | undefined;
    return new Promise<T>((resolve, reject) => {
      onStop = () => {
        const err = new SkError('SK_ERR_BACKEND_UNAVAILABLE', `${what}: ended, the agent is stopping`, {
          where,
        });
        ctrl.abort(err);
        reject(err);
      };
      if (this.#abort.signal.aborted) return onStop();
      this.#abort.signal.addEventListener('abort', onStop, { once: true });
      timer = this.#timers.setTimeout(() => {
        const err = new SkError(
          'SK_ERR_BACKEND_TIMEOUT',
          `${what}: no answer within ${roughDuration(timeoutMs)} (${limit}); the call was ended`,
          { where },
        );
        ctrl.abort(err);
        reject(err);
      }, timeoutMs);
      slowTimer = this.#timers.setTimeout(
        () => {
          slowTimer = undefined;
          if (this.#calls.has(call) && !this.#stopped) void this.#exclusive(() => this.#writeStatusQuietly());
        },
        Math.min(SLOW_CALL_MS, Math.floor(timeoutMs / 2)),
      );
      Promise.resolve()
        .then(() => run(ctx))
        .then(resolve, reject);
    }).finally(() => {
      this.#calls.delete(call);
      this.#timers.clearTimeout(timer);
      if (slowTimer !== undefined) this.#timers.clearTimeout(slowTimer);
      if (onStop) this.#abort.signal.removeEventListener('abort', onStop);
      // A provider that ignored the signal may still be running: stop it now, at least.
      if (!ctrl.signal.aborted) ctrl.abort();
    });
  }

  /**
   * Fetch, select and render the given secrets. Secrets reading the same source (same ref but for
   * `#key`) share one fetch; a provider with `fetchMany` gets all its sources in one call.
   */
  async #fetch(states: readonly SecretState[]): Promise<Map<string, Outcome>> {
    const out = new Map<string, Outcome>();
    const byProvider = new Map<string, Map<string, SecretState[]>>();
    for (const st of states) {
      const ref = st.secret.ref;
      const sources = byProvider.get(ref.provider) ?? new Map<string, SecretState[]>();
      byProvider.set(ref.provider, sources);
      const list = sources.get(st.source);
      if (list) list.push(st);
      else sources.set(st.source, [st]);
    }
    await Promise.all(
      [...byProvider].map(async ([name, sources]) => {
        const groups = [...sources.values()];
        let results: Fetched;
        try {
          const provider = this.#provider(groups[0]![0]!.secret);
          results = await this.#fetchGroups(name, provider, groups);
        } catch (e) {
          const err = toSkError(e, 'SK_ERR_INTERNAL', `provider ${name}`);
          results = groups.map(() => err);
        }
        groups.forEach((group, i) => {
          const r = results[i];
          for (const st of group) out.set(st.secret.name, this.#render(st.secret, r));
        });
      }),
    );
    return out;
  }

  async #fetchGroups(
    name: string,
    provider: Provider,
    groups: readonly (readonly SecretState[])[],
  ): Promise<Fetched> {
    const refs = groups.map((g) => g[0]!.secret.ref);
    const wrap = (e: unknown, ref: SecretRef) =>
      toValueSafeSkError(e, 'SK_ERR_INTERNAL', `${ref.raw}: ${name} provider`);
    const names = (g: readonly SecretState[]) => g.map((st) => st.secret.name);
    if (provider.fetchMany && refs.length > 1) {
      const what = `${name} batch fetch of ${refs.length} secrets (${refs[0]!.raw}, …)`;
      try {
        const results = await this.#timed(name, 'fetchMany', () =>
          this.#guard(name, 'fetch', what, groups.flatMap(names), what, (ctx) =>
            provider.fetchMany!(refs, ctx),
          ),
        );
        return refs.map(
          (ref, i) =>
            results[i] ??
            new SkError('SK_ERR_INTERNAL', `${ref.raw}: ${name} provider returned no result for it`),
        );
      } catch (e) {
        return refs.map((ref) => wrap(e, ref));
      }
    }
    return Promise.all(
      refs.map((ref, i) =>
        this.#timed(name, 'fetch', () =>
          this.#guard(name, 'fetch', `${name} fetch of ${ref.raw}`, names(groups[i]!), ref.raw, (ctx) =>
            provider.fetch(ref, ctx),
          ),
        ).catch((e: unknown) => wrap(e, ref)),
      ),
    );
  }

  /** Run one provider call, telling the observer how long it took and whether it failed. */
  async #timed<T>(provider: string, op: BackendOp, call: () => Promise<T>): Promise<T> {
    const ob = this.#opts.observer;
    if (!ob?.backendCall) return call();
    const t0 = performance.now();
    try {
      const r = await call();
      this.#observe((o) => o.backendCall?.(provider, op, (performance.now() - t0) / 1000, undefined));
      return r;
    } catch (e) {
      const code = toSkError(e, 'SK_ERR_INTERNAL').code;
      this.#observe((o) => o.backendCall?.(provider, op, (performance.now() - t0) / 1000, code));
      throw e;
    }
  }

  /** Call the observer; a failing hook never disturbs the engine. */
  #observe(fn: (ob: EngineObserver) => void): void {
    const ob = this.#opts.observer;
    if (!ob) return;
    try {
      fn(ob);
    } catch {
      /* metrics must not break rotation */
    }
  }

  #render(secret: ResolvedSecret, r: FetchResult | SkError | undefined): Outcome {
    if (r === undefined)
      return { ok: false, error: new SkError('SK_ERR_INTERNAL', `${secret.ref.raw}: no result`) };
    if (r instanceof SkError) return { ok: false, error: r };
    try {
      const bytes = renderSecret(secret, selectKey(r.value, secret.ref));
      return { ok: true, bytes, result: r };
    } catch (e) {
      return { ok: false, error: toValueSafeSkError(e, 'SK_ERR_RENDER', `secrets.${secret.name}`) };
    }
  }

  // --- watches ---

  #startWatches(): void {
    // One ref per source.
    const byProvider = new Map<string, SecretRef[]>();
    for (const [first] of this.#bySource.values()) {
      const ref = first!.secret.ref;
      const refs = byProvider.get(ref.provider);
      if (refs) refs.push(ref);
      else byProvider.set(ref.provider, [ref]);
    }
    for (const [name, refs] of byProvider) {
      const p = this.#providers.get(name);
      if (!p?.watch) continue;
      this.#unwatch.push(p.watch(refs, (ref) => this.#onSourceChanged(name, ref), this.#ctx(name)));
    }
  }

  #onSourceChanged(provider: string, ref: SecretRef): void {
    // The source key names the provider: a ref of another provider finds no group.
    const hits = this.#bySource.get(sourceKey(ref)) ?? [];
    this.#log.debug({ provider, ref: ref.raw, secrets: hits.map((h) => h.secret.name) }, 'source changed');
    for (const st of hits) this.#enqueue(st.secret.name, 'fetch', this.#coalesceMs);
  }

  // --- output ---

  #report(changed: readonly string[], at: number): WriteReport {
    const files = new Set(changed);
    const report: WriteReport = {
      first: !this.#wrote,
      changedFiles: [...changed],
      changedSecrets: [...this.#states.values()]
        .filter((s) => files.has(s.secret.file))
        .map((s) => s.secret.name),
      at,
    };
    this.#wrote = true;
    return report;
  }

  #afterWrite(report: WriteReport): void {
    if (!report.first && report.changedFiles.length > 0) this.#opts.notifier?.changed(report.changedFiles);
    try {
      this.#opts.onWrite?.(report);
    } catch (e) {
      this.#log.warn({ err: (e as Error).message }, 'onWrite callback failed');
    }
  }

  /** The status file is informational: failing to update it never fails a sync. */
  async #writeStatusQuietly(): Promise<void> {
    try {
      await this.#writer.writeStatus(this.status());
    } catch (e) {
      this.#log.warn(
        { code: toSkError(e, 'SK_ERR_WRITE').code, err: (e as Error).message },
        'status file not updated',
      );
    }
  }
}

/** A duration for people, to a tenth of a second: `400ms`, `2s`, `29.9s`. */
export function roughDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  return `${(ms / 1000).toFixed(1).replace(/\.0$/, '')}s`;
}

/** The ref without its `#key`: secrets with the same source share one fetch and one watch. */
function sourceKey(ref: SecretRef): string {
  return formatRef({ ...ref, key: undefined });
}
