import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineObserver } from '../src/engine.js';
import type { ErrorCode } from '../src/errors.js';
import { SkError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import type { StatusDocument } from '../src/writer.js';

/**
 * The agent's optional HTTP listener (`agent.metrics` in the spec; `sidekey.io/metrics-port`):
 *
 * - `GET /metrics`: Prometheus text format (prom-client): per secret, per backend, and the default
 *   process metrics under their stock names (`process_*`, `nodejs_*`) so existing dashboards work.
 * - `GET /healthz`: 200 while the process answers.
 * - `GET /readyz`: 200 once the first complete write is done and no secret is past `maxStale`, else
 *   503 with a one-line reason naming secrets (the native sidecar's startup probe uses it).
 *
 * This module (and prom-client with it) is loaded only when the listener is on, after the agent's
 * first write: it costs CPU and resident memory (docs/agent.md, "Metrics and health").
 *
 * Labels carry secret names, backend (provider) names, operations and SK_ERR codes — never a value,
 * a ref or a version.
 */

export interface AgentListenerOptions {
  readonly port: number;
  readonly address: string;
  readonly log: Logger;
  /** The engine's status now (what the status file says), or undefined before the engine exists. */
  readonly status: () => StatusDocument | undefined;
  /** Clock (epoch ms); default Date.now. */
  readonly now?: () => number;
}

export interface AgentListener {
  /** Hand this to the Engine: it counts refreshes, failures and backend calls. */
  readonly observer: EngineObserver;
  /** The bound address (the port is the real one when 0 was asked for). */
  readonly address: AddressInfo;
  readonly registry: Registry;
  close(): Promise<void>;
}

/** Latency buckets of backend calls, seconds: a local file read to a slow cloud API behind retries. */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What the readiness check says: ready, or why not (secret names only). */
export function readiness(status: StatusDocument | undefined): { ready: boolean; reason: string } {
  if (!status?.ready) return { ready: false, reason: 'not ready: no complete write yet' };
  const stale = Object.entries(status.secrets)
    .filter(([, s]) => s.stale)
    .map(([name]) => name);
  if (stale.length > 0) return { ready: false, reason: `not ready: past maxStale: ${stale.join(', ')}` };
  return { ready: true, reason: 'ready' };
}

/** The metrics of one agent, on a registry of their own. */
export function createAgentMetrics(opts: Pick<AgentListenerOptions, 'status' | 'now'>): {
  registry: Registry;
  observer: EngineObserver;
  /** Bring the gauges up to date from the engine's status; called before every scrape. */
  update(): void;
} {
  const now = opts.now ?? Date.now;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const reg = [registry];

  const refreshes = new Counter({
    name: 'sidekey_secret_refreshes_total',
    help: 'Successful refreshes of a secret (fetched, rendered, written or found unchanged).',
    labelNames: ['secret'],
    registers: reg,
  });
  const failures = new Counter({
    name: 'sidekey_secret_refresh_failures_total',
    help: 'Failed refreshes of a secret during rotation, by SK_ERR code (the last good file is kept).',
    labelNames: ['secret', 'code'],
    registers: reg,
  });
  const refreshAge = new Gauge({
    name: 'sidekey_secret_refresh_age_seconds',
    help: 'Seconds since the secret was last refreshed successfully.',
    labelNames: ['secret'],
    registers: reg,
  });
  const versionAge = new Gauge({
    name: 'sidekey_secret_version_age_seconds',
    help: "Seconds since the secret's file last changed content (or this agent first wrote it).",
    labelNames: ['secret'],
    registers: reg,
  });
  const leaseRemaining = new Gauge({
    name: 'sidekey_secret_lease_remaining_seconds',
    help: 'Seconds until the lease of a dynamic secret expires (leased secrets only).',
    labelNames: ['secret'],
    registers: reg,
  });
  const stale = new Gauge({
    name: 'sidekey_secret_stale',
    help: '1 while the secret has been failing for longer than maxStale.after (its last good file is served).',
    labelNames: ['secret'],
    registers: reg,
  });
  const failing = new Gauge({
    name: 'sidekey_secret_failing',
    help: '1 while the last refresh of the secret failed.',
    labelNames: ['secret'],
    registers: reg,
  });
  const ready = new Gauge({
    name: 'sidekey_agent_ready',
    help: '1 once the first complete write is done and no secret is past maxStale (what /readyz answers).',
    registers: reg,
  });
  const calls = new Counter({
    name: 'sidekey_backend_calls_total',
    help: 'Calls to a backend by operation (fetch, fetchMany, renew).',
    labelNames: ['backend', 'op'],
    registers: reg,
  });
  const errors = new Counter({
    name: 'sidekey_backend_errors_total',
    help: 'Failed calls to a backend by operation and SK_ERR code.',
    labelNames: ['backend', 'op', 'code'],
    registers: reg,
  });
  const latency = new Histogram({
    name: 'sidekey_backend_call_duration_seconds',
    help: 'Duration of backend calls by operation, retries included.',
    labelNames: ['backend', 'op'],
    buckets: LATENCY_BUCKETS,
    registers: reg,
  });
  const logins = new Counter({
    name: 'sidekey_backend_logins_total',
    help: 'Logins to a backend (Vault/OpenBao auth logins and token lookups).',
    labelNames: ['backend'],
    registers: reg,
  });

  /** Providers that count their logins (`stats.logins`); read at scrape time. */
  const loginSources = new Map<string, { stats: { logins: number } }>();
  const loginsSeen = new Map<string, number>();

  const observer: EngineObserver = {
    providerCreated(name, provider) {
      const stats = (provider as { stats?: { logins?: unknown } }).stats;
      if (stats && typeof stats.logins === 'number') {
        loginSources.set(name, provider as unknown as { stats: { logins: number } });
        logins.inc({ backend: name }, 0);
      }
    },
    backendCall(backend, op, seconds, code?: ErrorCode) {
      calls.inc({ backend, op });
      latency.observe({ backend, op }, seconds);
      if (code !== undefined) errors.inc({ backend, op, code });
    },
    refreshed(secret) {
      refreshes.inc({ secret });
    },
    refreshFailed(secret, code) {
      failures.inc({ secret, code });
    },
  };

  const update = () => {
    const st = opts.status();
    const t = now();
    ready.set(readiness(st).ready ? 1 : 0);
    for (const [name, source] of loginSources) {
      const n = source.stats.logins;
      const delta = n - (loginsSeen.get(name) ?? 0);
      if (delta > 0) logins.inc({ backend: name }, delta);
      loginsSeen.set(name, n);
    }
    if (!st) return;
    for (const g of [refreshAge, versionAge, leaseRemaining]) g.reset();
    const secs = (iso: string) => Math.max(0, (t - Date.parse(iso)) / 1000);
    for (const [secret, s] of Object.entries(st.secrets)) {
      // Every secret shows up from the start, so a failure counter rises from 0 and rate() sees it.
      refreshes.inc({ secret }, 0);
      stale.set({ secret }, s.stale ? 1 : 0);
      failing.set({ secret }, s.lastError ? 1 : 0);
      if (s.fetchedAt) refreshAge.set({ secret }, secs(s.fetchedAt));
      if (s.changedAt) versionAge.set({ secret }, secs(s.changedAt));
      if (s.lease) leaseRemaining.set({ secret }, Math.max(0, (Date.parse(s.lease.expiresAt) - t) / 1000));
    }
  };
  return { registry, observer, update };
}

/**
 * Start the listener. Resolves once it is bound; a port in use or an address not on this host is an
 * SK_ERR_LISTEN (the agent exits: with the listener on, the kubelet's startup probe needs it).
 */
export async function startAgentListener(opts: AgentListenerOptions): Promise<AgentListener> {
  const metrics = createAgentMetrics(opts);
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return reply(405, 'method not allowed\n');
    }
    switch (url) {
      case '/healthz':
        return reply(200, 'ok\n');
      case '/readyz': {
        const r = readiness(opts.status());
        return reply(r.ready ? 200 : 503, `${r.reason}\n`);
      }
      case '/metrics':
        try {
          metrics.update();
        } catch (e) {
          opts.log.warn({ err: (e as Error).message }, 'metrics: status not read');
        }
        metrics.registry.metrics().then(
          (text) => reply(200, text, metrics.registry.contentType),
          (e: unknown) => {
            opts.log.warn({ err: (e as Error).message }, 'metrics: collection failed');
            reply(500, 'metrics collection failed\n');
          },
        );
        return;
      default:
        return reply(404, 'not found: try /metrics, /healthz or /readyz\n');
    }
  });
  // Small, bounded: a scraper and a kubelet, never a crowd; slow clients are cut off.
  server.maxConnections = 32;
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new SkError(
          'SK_ERR_LISTEN',
          `agent.metrics: cannot listen on ${hostPort(opts.address, opts.port)} (${e.code ?? e.message})${
            e.code === 'EADDRINUSE' ? '; another container of the pod uses this port: pick another one' : ''
          }`,
          { where: 'agent.metrics' },
        ),
      ),
    );
    server.listen(opts.port, opts.address, () => resolve());
  });
  server.on('error', (e) => opts.log.warn({ err: e.message }, 'metrics listener error'));
  const address = server.address() as AddressInfo;
  opts.log.info(
    { address: address.address, port: address.port },
    'metrics listening (/metrics, /healthz, /readyz)',
  );
  return {
    observer: metrics.observer,
    address,
    registry: metrics.registry,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
