import type { SkError } from '../errors.js';
import type { SecretRef } from '../refs.js';
import type { Backends } from '../spec.js';

/**
 * What a provider hands back: the secret's value and a version. Providers never touch the output
 * directory; the writer owns the disk.
 *
 * - `bytes`: an opaque value (a file, a SecretBinary, a plain string secret).
 * - `map`: structured data (a JSON secret, a KV secret, a YAML file); `#key` selects into it.
 */
export type SecretValue =
  | { readonly kind: 'bytes'; readonly bytes: Buffer }
  | { readonly kind: 'map'; readonly data: Readonly<Record<string, unknown>> };

/** A lease on a dynamic secret (Vault `database/creds/...`). */
export interface Lease {
  /** Backend lease id (Vault lease_id); never contains a secret value. */
  readonly id: string;
  /** How long the secret is valid from `issuedAt`, in ms. */
  readonly ttlMs: number;
  readonly renewable: boolean;
  /** When the current ttl started (epoch ms). */
  readonly issuedAt: number;
}

export interface FetchResult {
  readonly value: SecretValue;
  /**
   * Changes whenever the value changes: a backend version id (Vault KV version, AWS VersionId) or a
   * content hash. Used for change detection and shown in the status file. Never the value itself.
   */
  readonly version: string;
  readonly lease?: Lease;
}

/** Context every provider call gets. */
export interface ProviderContext {
  /**
   * Aborted when the call's deadline passes (its reason: an SkError SK_ERR_BACKEND_TIMEOUT) or the
   * agent shuts down. A provider passes it to every request and gives up at once: the engine stops
   * waiting at the deadline anyway, and a request left running holds a socket and a concurrency slot.
   */
  readonly signal: AbortSignal;
  /**
   * Epoch ms by which the call must be done (fetch, renew): a provider's per-attempt timeouts and
   * retry waits should not run past it. Undefined for long-lived work (watch, close).
   */
  readonly deadline?: number;
  /** Structured logger; never give it values. */
  readonly log: ProviderLogger;
}

export interface ProviderLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** Called by a watching provider when a ref's source changed (the scheduler then re-fetches it). */
export type ChangeListener = (ref: SecretRef) => void;

/**
 * A secrets backend. One instance per agent (per spec); created by its {@link ProviderFactory}.
 *
 * Errors: throw {@link SkError} with one of the typed codes (SK_ERR_SOURCE_NOT_FOUND,
 * SK_ERR_KEY_NOT_FOUND, SK_ERR_BACKEND_AUTH, SK_ERR_BACKEND_DENIED, SK_ERR_BACKEND_UNAVAILABLE,
 * SK_ERR_BACKEND_RESPONSE, SK_ERR_SOURCE_UNREADABLE) and a message naming the ref and the backend
 * call, sanitised of request ids and credentials.
 */
export interface Provider {
  readonly name: string;
  /** Fetch one secret (the whole secret: `#key` selection is done by the caller). */
  fetch(ref: SecretRef, ctx: ProviderContext): Promise<FetchResult>;
  /**
   * Fetch several secrets at once where the backend can batch (AWS BatchGetSecretValue). The result
   * has one entry per ref, in order: a result or the SkError for that ref.
   */
  fetchMany?(refs: readonly SecretRef[], ctx: ProviderContext): Promise<Array<FetchResult | SkError>>;
  /** Renew a lease; returns the renewed lease, or throws if it cannot be renewed further. */
  renew?(lease: Lease, ctx: ProviderContext): Promise<Lease>;
  /** Start watching the sources of these refs; returns a function that stops watching. */
  watch?(
    refs: readonly SecretRef[],
    onChange: ChangeListener,
    ctx: ProviderContext,
  ): () => Promise<void> | void;
  /** Release everything (tokens, leases if configured, sockets). */
  close?(ctx: ProviderContext): Promise<void>;
}

/** Static description of a provider: used by the webhook and CLI to validate refs without I/O. */
export interface ProviderFactory {
  readonly name: string;
  /** Check a ref's locator and options (syntax only, no I/O); throw SK_ERR_REF_SYNTAX naming `where`. */
  validateRef(ref: SecretRef, where: string): void;
  /** Which backend settings this provider needs in a pod (the webhook mounts a token if `serviceAccountToken`). */
  readonly needs?: { readonly serviceAccountToken?: boolean };
  create(backends: Backends): Provider;
}
