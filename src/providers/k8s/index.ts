import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type * as K8s from '@kubernetes/client-node';
import { type ErrorCode, firstLine, SkError } from '../../errors.js';
import type { SecretRef } from '../../refs.js';
import type { Backends } from '../../spec.js';
import type { ChangeListener, FetchResult, Provider, ProviderContext, ProviderFactory } from '../types.js';
import { type K8sSettings, k8sBackend } from './descriptor.js';

/**
 * The `k8s:` provider: `k8s:<secret-name>[#key]` reads a Kubernetes Secret in the pod's own namespace,
 * with the pod's own service-account token. It is the migration path from `secretKeyRef` env vars:
 * `sidekey migrate` rewrites those to `k8s:` refs, and the same RBAC that let the kubelet read the
 * Secret is narrowed to exactly these Secret names for the service account (see docs/migrate.md).
 *
 * - Connection: `backends.k8s.server` (+ `caCert`, `tokenFile`) if given; else the in-cluster config
 *   (service host env + mounted service-account token, re-read as it rotates); else the current
 *   kubeconfig context. `tokenFile` overrides the token in every case.
 * - Namespace: `backends.k8s.namespace`, else a `namespace` file next to `tokenFile` (the webhook
 *   projects one), else the in-cluster namespace file, else the kubeconfig
 *   context's namespace, else `default`. Refs cannot name another namespace on purpose: a pod reads
 *   its own namespace's Secrets only.
 * - Value: a map of the Secret's keys, base64-decoded (strings when valid UTF-8, else Buffers);
 *   version: `metadata.resourceVersion`.
 * - Watch: one watch per Secret name (`fieldSelector=metadata.name=<name>`, which is what RBAC
 *   `resourceNames` allows), so a change reaches the files without polling. When a watch fails or
 *   closes, the Secret is re-read (so nothing is missed) and the watch re-opened, with exponential
 *   backoff while it keeps failing: a periodic re-list until the API serves watches again.
 * - Errors: 404 → SK_ERR_SOURCE_NOT_FOUND, 403 → SK_ERR_BACKEND_DENIED naming verb and resource,
 *   401 → SK_ERR_BACKEND_AUTH, 429/5xx/network → SK_ERR_BACKEND_UNAVAILABLE. Messages carry the ref,
 *   the call and the status only: never the response body (it may echo data) or the token.
 */

/** Where Kubernetes mounts the pod's service-account credentials. */
export const K8S_SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Request timeout for a read. */
export const K8S_TIMEOUT_MS = 10_000;

export const k8sProvider: ProviderFactory = {
  name: 'k8s',
  validateRef: k8sBackend.validateRef,
  needs: { serviceAccountToken: true },
  create(backends: Backends): Provider {
    return new K8sProvider(backends.k8s ?? {});
  },
};

/** Watch tuning (tests shorten it). */
export interface K8sWatchOptions {
  /** First delay after a failed watch before re-listing and retrying; doubles up to `maxBackoffMs`. */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** A watch that ends sooner than this after opening counts as failed (no busy loop). */
  readonly minWatchMs?: number;
}

/** Create a provider with explicit watch tuning (the factory uses the defaults). */
export function createK8sProvider(settings: K8sSettings, watch: K8sWatchOptions = {}): Provider {
  return new K8sProvider(settings, watch);
}

interface Client {
  readonly k8s: typeof K8s;
  readonly kc: K8s.KubeConfig;
  readonly api: K8s.CoreV1Api;
  readonly namespace: string;
}

/** The connection as configured; the token, when it comes from a file, is added per request. */
interface Connection extends Client {
  readonly tokenFile: string | undefined;
}

interface SecretRead {
  readonly data: Record<string, string | Buffer>;
  readonly version: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decode(b64: string): string | Buffer {
  const buf = Buffer.from(b64, 'base64');
  try {
    return utf8.decode(buf);
  } catch {
    return buf;
  }
}

function readIfExists(p: string): string | undefined {
  try {
    return existsSync(p) ? readFileSync(p, 'utf8').trim() || undefined : undefined;
  } catch {
    return undefined;
  }
}

class K8sProvider implements Provider {
  readonly name = 'k8s';
  #conn: Promise<Connection> | undefined;
  /** The client for the token last read from the token file. */
  #current: { token: string; client: Client } | undefined;
  /** Last resourceVersion seen per Secret name (fetch and watch agree on it). */
  readonly #known = new Map<string, string>();
  readonly #watch: Required<K8sWatchOptions>;

  constructor(
    readonly settings: K8sSettings,
    watch: K8sWatchOptions = {},
  ) {
    this.#watch = {
      initialBackoffMs: watch.initialBackoffMs ?? 1000,
      maxBackoffMs: watch.maxBackoffMs ?? 60_000,
      minWatchMs: watch.minWatchMs ?? 1000,
    };
  }

  /**
   * The API client. The connection is built once on first use (the Kubernetes client is loaded only
   * then); a token file is re-read on every call, so a rotated projected token is picked up at once,
   * and trimmed (a token file written with a trailing newline would otherwise be an invalid header).
   */
  async client(): Promise<Client> {
    this.#conn ??= this.#connect().catch((e: unknown) => {
      this.#conn = undefined;
      throw e;
    });
    const conn = await this.#conn;
    if (!conn.tokenFile) return conn;
    let token: string;
    try {
      token = readFileSync(conn.tokenFile, 'utf8').trim();
    } catch (e) {
      throw new SkError(
        'SK_ERR_BACKEND_AUTH',
        `k8s: cannot read the service-account token file ${conn.tokenFile} (${(e as { code?: string }).code ?? 'error'})`,
        { where: 'backends.k8s.tokenFile' },
      );
    }
    if (this.#current?.token !== token) {
      const kc = new conn.k8s.KubeConfig();
      const cluster = conn.kc.getCurrentCluster();
      if (cluster) kc.loadFromClusterAndUser(cluster, { name: 'sidekey', token });
      this.#current = {
        token,
        client: { k8s: conn.k8s, kc, api: kc.makeApiClient(conn.k8s.CoreV1Api), namespace: conn.namespace },
      };
    }
    return this.#current.client;
  }

  async #connect(): Promise<Connection> {
    const k8s = await import('@kubernetes/client-node');
    const s = this.settings;
    const kc = new k8s.KubeConfig();
    const saToken = `${K8S_SA_DIR}/token`;
    let tokenFile: string | undefined;
    // The token is set per request by client(); the user here carries none.
    const tokenUser = (file: string): K8s.User => {
      tokenFile = file;
      return { name: 'sidekey' };
    };
    try {
      if (s.server) {
        const ca = s.caCert ?? (existsSync(`${K8S_SA_DIR}/ca.crt`) ? `${K8S_SA_DIR}/ca.crt` : undefined);
        kc.loadFromClusterAndUser(
          // The client refuses plain http unless "skipTLSVerify" is set; there is no TLS to verify then.
          {
            name: 'sidekey',
            server: s.server,
            skipTLSVerify: s.server.startsWith('http:'),
            ...(ca ? { caFile: ca } : {}),
          },
          tokenUser(s.tokenFile ?? saToken),
        );
      } else if (process.env.KUBERNETES_SERVICE_HOST && (s.tokenFile || existsSync(saToken))) {
        kc.loadFromCluster();
        const cluster = kc.getCurrentCluster();
        if (cluster) {
          kc.loadFromClusterAndUser(
            { ...cluster, ...(s.caCert ? { caFile: s.caCert } : {}) },
            tokenUser(s.tokenFile ?? saToken),
          );
        }
      } else {
        kc.loadFromDefault();
        const cluster = kc.getCurrentCluster();
        if (cluster && s.tokenFile) kc.loadFromClusterAndUser(cluster, tokenUser(s.tokenFile));
      }
    } catch (e) {
      throw new SkError(
        'SK_ERR_BACKEND_CONFIG',
        `k8s: cannot load the cluster connection (in-cluster config or kubeconfig): ${firstLine(e)}`,
        { where: 'backends.k8s' },
      );
    }
    if (!kc.getCurrentCluster()) {
      throw new SkError(
        'SK_ERR_BACKEND_CONFIG',
        'k8s: no API server: not in a cluster, no kubeconfig context, and backends.k8s.server is not set',
        { where: 'backends.k8s' },
      );
    }
    const ctxNs = kc.getContextObject(kc.getCurrentContext())?.namespace;
    // The webhook projects the namespace next to the agent's own token (downward API).
    const namespace =
      s.namespace ??
      (s.tokenFile ? readIfExists(path.join(path.dirname(s.tokenFile), 'namespace')) : undefined) ??
      readIfExists(`${K8S_SA_DIR}/namespace`) ??
      ctxNs ??
      'default';
    return { k8s, kc, api: kc.makeApiClient(k8s.CoreV1Api), namespace, tokenFile };
  }

  /** GET the Secret; errors mapped to SkErrors naming the ref and the call. */
  async read(name: string, raw: string): Promise<SecretRead> {
    const c = await this.client();
    const call = `get secrets/${name} in namespace ${c.namespace}`;
    try {
      const secret = await withTimeout(c.api.readNamespacedSecret({ name, namespace: c.namespace }));
      const data: Record<string, string | Buffer> = {};
      for (const [k, v] of Object.entries(secret.data ?? {})) data[k] = decode(v);
      const version = secret.metadata?.resourceVersion;
      if (!version) {
        throw new SkError(
          'SK_ERR_BACKEND_RESPONSE',
          `${raw}: ${call}: the Secret has no metadata.resourceVersion`,
          {
            where: raw,
          },
        );
      }
      this.#known.set(name, version);
      return { data, version };
    } catch (e) {
      throw mapError(e, raw, call, c.k8s);
    }
  }

  async fetch(ref: SecretRef, _ctx: ProviderContext): Promise<FetchResult> {
    k8sProvider.validateRef(ref, ref.raw);
    const { data, version } = await this.read(ref.locator, ref.raw);
    return { value: { kind: 'map', data }, version };
  }

  watch(refs: readonly SecretRef[], onChange: ChangeListener, ctx: ProviderContext): () => Promise<void> {
    const byName = new Map<string, SecretRef[]>();
    for (const r of refs) byName.set(r.locator, [...(byName.get(r.locator) ?? []), r]);
    const watchers = [...byName].map(
      ([name, rs]) => new SecretWatcher(this, name, rs, onChange, ctx, this.#watch),
    );
    for (const w of watchers) w.start();
    return async () => {
      await Promise.all(watchers.map((w) => w.stop()));
    };
  }

  /** Record a version seen by a watch; returns whether it differs from the last one known. */
  observe(name: string, version: string | undefined): boolean {
    const prev = this.#known.get(name);
    if (version === undefined) {
      this.#known.delete(name);
      return prev !== undefined;
    }
    this.#known.set(name, version);
    return prev !== undefined && prev !== version;
  }

  async close(): Promise<void> {}
}

/**
 * Watches one Secret by name, falling back to re-reads with backoff while the watch fails. Logs name
 * the Secret in `k8sSecret`: a `secret` field is censored by the logger's redaction.
 */
class SecretWatcher {
  #stopped = false;
  #warned = false;
  #controller: AbortController | undefined;
  /** Ends the open watch: the client hands out its controller only once the API server answered. */
  #endWatch: (() => void) | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;

  constructor(
    readonly provider: K8sProvider,
    readonly name: string,
    readonly refs: readonly SecretRef[],
    readonly onChange: ChangeListener,
    readonly ctx: ProviderContext,
    readonly opts: Required<K8sWatchOptions>,
  ) {}

  start(): void {
    this.#loop = this.#run().catch((e: unknown) => {
      this.ctx.log.warn(
        { k8sSecret: this.name, err: e instanceof Error ? e.message : String(e) },
        'k8s watch loop ended',
      );
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#controller?.abort();
    this.#endWatch?.();
    this.#wake?.();
    await this.#loop;
  }

  #notify(): void {
    if (this.#stopped) return;
    for (const r of this.refs) this.onChange(r);
  }

  async #run(): Promise<void> {
    let delay = this.opts.initialBackoffMs;
    while (!this.#stopped) {
      const opened = Date.now();
      const outcome = await this.#watchOnce();
      if (this.#stopped) break;
      const failed = outcome !== 'closed' || Date.now() - opened < this.opts.minWatchMs;
      // Re-read: a change made while no watch was open must not be missed.
      await this.#relist();
      if (this.#stopped) break;
      if (failed) {
        this.ctx.log.debug(
          { k8sSecret: this.name, retryInMs: delay, outcome },
          'k8s watch failed; re-list and retry',
        );
        await this.#sleep(delay);
        delay = Math.min(delay * 2, this.opts.maxBackoffMs);
      } else {
        delay = this.opts.initialBackoffMs;
      }
    }
  }

  async #relist(): Promise<void> {
    try {
      const c = await this.provider.client();
      // A plain read, not provider.read(): the version bookkeeping (and change detection) is here.
      const s = await withTimeout(c.api.readNamespacedSecret({ name: this.name, namespace: c.namespace }));
      if (this.provider.observe(this.name, s.metadata?.resourceVersion)) this.#notify();
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code === 404) {
        if (this.provider.observe(this.name, undefined)) this.#notify();
        return;
      }
      this.ctx.log.debug(
        { k8sSecret: this.name, status: typeof code === 'number' ? code : undefined },
        'k8s re-list failed',
      );
    }
  }

  /** One watch request; resolves with how it ended. */
  async #watchOnce(): Promise<'closed' | 'error'> {
    let c: Client;
    try {
      c = await this.provider.client();
    } catch {
      return 'error';
    }
    return new Promise((resolve) => {
      let settled = false;
      const finish = (how: 'closed' | 'error') => {
        if (settled) return;
        settled = true;
        this.#endWatch = undefined;
        this.#controller?.abort();
        resolve(how);
      };
      // A request still waiting for its answer (the client sets no timeout) must not hold up stop().
      this.#endWatch = () => finish('closed');
      const watch = new c.k8s.Watch(c.kc);
      watch
        .watch(
          `/api/v1/namespaces/${encodeURIComponent(c.namespace)}/secrets`,
          { fieldSelector: `metadata.name=${this.name}`, allowWatchBookmarks: true },
          (type: string, obj: { metadata?: { name?: string; resourceVersion?: string } } | undefined) => {
            if (type === 'ERROR') {
              // e.g. 410 Gone: start over with a fresh watch.
              finish('error');
              return;
            }
            if (type === 'BOOKMARK' || obj?.metadata?.name !== this.name) return;
            const version = type === 'DELETED' ? undefined : obj.metadata.resourceVersion;
            if (this.provider.observe(this.name, version)) {
              this.ctx.log.debug({ k8sSecret: this.name, event: type }, 'k8s secret changed');
              this.#notify();
            }
          },
          (err: unknown) => {
            if (err && !this.#stopped) {
              const status = (err as { statusCode?: unknown }).statusCode;
              if ((status === 401 || status === 403) && !this.#warned) {
                // Once: without watch rights the agent still works, by re-reading with backoff.
                this.#warned = true;
                this.ctx.log.warn(
                  { k8sSecret: this.name, status },
                  `k8s: watch secrets/${this.name} denied (${status}); falling back to periodic re-reads (grant watch and list on it)`,
                );
              } else {
                this.ctx.log.debug({ k8sSecret: this.name, status }, 'k8s watch ended with an error');
              }
            }
            finish(err ? 'error' : 'closed');
          },
        )
        .then(
          (controller) => {
            this.#controller = controller;
            if (this.#stopped || settled) controller.abort();
          },
          () => finish('error'),
        );
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

/**
 * `p`, or a rejection after {@link K8S_TIMEOUT_MS} (mapped to "no answer"): the client's reads have no
 * timeout of their own. The request itself is left to finish.
 */
async function withTimeout<T>(p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(Object.assign(new Error('timed out'), { timeout: true })),
          K8S_TIMEOUT_MS,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Translate a client error into an SkError; never includes the response body or headers. */
function mapError(e: unknown, raw: string, call: string, k8s: typeof K8s): SkError {
  if (e instanceof SkError) return e;
  const fail = (code: ErrorCode, why: string) =>
    new SkError(code, `${raw}: ${call}: ${why}`, { where: raw, cause: undefined });
  if (e instanceof k8s.ApiException) {
    const status = e.code;
    const [verb, resource] = call.split(' ');
    switch (status) {
      case 404:
        return fail('SK_ERR_SOURCE_NOT_FOUND', 'Secret not found (404)');
      case 401:
        return fail('SK_ERR_BACKEND_AUTH', 'the service-account token was rejected (401)');
      case 403:
        return fail(
          'SK_ERR_BACKEND_DENIED',
          `forbidden (403): the service account may not ${verb} ${resource}; grant get/watch/list on it (see sidekey migrate's RBAC)`,
        );
      case 429:
        return fail('SK_ERR_BACKEND_UNAVAILABLE', 'throttled (429)');
      default:
        if (status >= 500) return fail('SK_ERR_BACKEND_UNAVAILABLE', `API server error (${status})`);
        return fail('SK_ERR_BACKEND_RESPONSE', `unexpected status ${status}`);
    }
  }
  if ((e as { timeout?: unknown }).timeout === true) {
    return fail('SK_ERR_BACKEND_UNAVAILABLE', `no answer within ${K8S_TIMEOUT_MS / 1000}s`);
  }
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && /^E[A-Z]+/.test(code)) {
    return fail('SK_ERR_BACKEND_UNAVAILABLE', `cannot reach the API server (${code})`);
  }
  if (
    e instanceof Error &&
    /ECONN|ENOTFOUND|EAI_AGAIN|socket|network|certificate|self.signed|TLS/i.test(e.message)
  ) {
    return fail('SK_ERR_BACKEND_UNAVAILABLE', `cannot reach the API server (${e.name})`);
  }
  return fail('SK_ERR_BACKEND_RESPONSE', `unexpected failure (${e instanceof Error ? e.name : typeof e})`);
}
