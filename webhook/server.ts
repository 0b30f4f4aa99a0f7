import { X509Certificate } from 'node:crypto';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import pino from 'pino';
import { SkError } from '../src/errors.js';
import { createLogger, type Logger, silentLogger } from '../src/log.js';
import { reviewAdmission } from './admission.js';
import { loadWebhookConfig, nativeSidecarsEnabled, type WebhookConfig } from './config.js';
import { createPipelineContext } from './context.js';
import { NativeSidecarWatch } from './kube-version.js';
import { createMetrics, type WebhookMetrics } from './metrics.js';
import type { PipelineContext } from './pipeline.js';
import { type KeyPair, readKeyPair, watchKeyPair } from './tls-files.js';

/** Largest AdmissionReview accepted: a pod may be up to etcd's 1.5 MiB, and the review carries it once. */
export const BODY_LIMIT = 4 * 1024 * 1024;

export interface AppOptions {
  /** Serve HTTPS with this pair (TLS ≥ 1.2); omit for plain HTTP (`app.inject()` tests). */
  readonly tls?: KeyPair;
  readonly logger?: Logger;
  /** Pipeline context; default built from `config`. A function: read per request (it may change). */
  readonly ctx?: PipelineContext | (() => PipelineContext);
  /** Whether `auto` means native sidecars; default from the config (version), else false. */
  readonly nativeSidecars?: boolean;
  readonly metrics?: WebhookMetrics;
  /** How long a review waits for a turn before HTTP 503 SK_ERR_WEBHOOK_BUSY (ms, default 5000). */
  readonly queueTimeoutMs?: number;
}

/** How long a review may wait for a turn: well inside the API server's webhook timeout (10 s default). */
const QUEUE_TIMEOUT_MS = 5000;

/**
 * At most `max` admission reviews at once, the rest waiting in arrival order. Waiting happens before
 * the body is read, so a waiting request costs its socket's buffer, not its pod.
 */
export class ReviewGate {
  #active = 0;
  readonly #waiting: Array<(ok: boolean) => void> = [];
  constructor(
    readonly max: number,
    readonly timeoutMs: number,
  ) {}

  get active(): number {
    return this.#active;
  }

  /** Resolves true with a turn taken, or false after `timeoutMs` without one. */
  acquire(): Promise<boolean> {
    if (this.#active < this.max) {
      this.#active++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const turn = (ok: boolean) => {
        clearTimeout(timer);
        resolve(ok);
      };
      const timer = setTimeout(() => {
        const i = this.#waiting.indexOf(turn);
        if (i >= 0) this.#waiting.splice(i, 1);
        resolve(false);
      }, this.timeoutMs);
      this.#waiting.push(turn);
    });
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next(true);
    else this.#active--;
  }
}

/**
 * The admission server, built but not listening: `POST /mutate` (AdmissionReview v1), `/healthz`,
 * `/readyz`, `/metrics`. The request handler only decodes and encodes; the pipeline does the work.
 */
export function buildApp(config: WebhookConfig, opts: AppOptions = {}): FastifyInstance {
  const log = opts.logger ?? silentLogger;
  const fixed =
    typeof opts.ctx === 'object'
      ? opts.ctx
      : createPipelineContext(config, {
          nativeSidecars: opts.nativeSidecars ?? nativeSidecarsEnabled(config),
        });
  const current = typeof opts.ctx === 'function' ? opts.ctx : () => fixed;
  const metrics = opts.metrics ?? createMetrics();
  const app = Fastify({
    loggerInstance: log,
    // One line per admission is logged by the handler itself, without request bodies.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    return503OnClosing: true,
    // Close idle keep-alive connections on shutdown; in-flight requests finish first.
    forceCloseConnections: 'idle',
    ...(opts.tls
      ? {
          https: { cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' as const },
        }
      : {}),
  });
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (closing) return reply.code(503).send({ status: 'shutting down' });
    return { status: 'ready' };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  // The concurrency bound (docs/webhook.md, "Limits"): a turn is taken before the body is read and
  // given back when the answer has been sent (or the connection is gone).
  const gate = new ReviewGate(config.maxConcurrentReviews, opts.queueTimeoutMs ?? QUEUE_TIMEOUT_MS);
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'POST' || request.routeOptions.url !== '/mutate') return;
    let held = false;
    let closed = false;
    reply.raw.once('close', () => {
      closed = true;
      if (held) {
        held = false;
        metrics.inFlight.dec();
        gate.release();
      }
    });
    if (!(await gate.acquire())) {
      metrics.requestErrors.inc({ status: '503', reason: 'busy' });
      log.warn({ max: gate.max, waitedMs: gate.timeoutMs }, 'admission review refused: webhook busy');
      return reply.code(503).send({
        code: 'SK_ERR_WEBHOOK_BUSY',
        message: `the webhook is answering ${gate.max} reviews at once (maxConcurrentReviews) and this one waited ${gate.timeoutMs / 1000} s for a turn`,
      });
    }
    if (closed) {
      gate.release();
      return;
    }
    held = true;
    metrics.inFlight.inc();
  });

  app.post('/mutate', async (request, reply) => {
    const end = metrics.duration.startTimer();
    const r = reviewAdmission(request.body, current(), config.onInvalidAnnotations);
    if (r.kind === 'bad-request') {
      end({ outcome: 'bad-request' });
      metrics.requestErrors.inc({ status: '400', reason: 'not-a-review' });
      log.warn({ err: r.message }, 'bad admission request');
      return reply.code(400).send({ code: 'SK_ERR_MANIFEST_INVALID', message: r.message });
    }
    const o = r.outcome;
    const label =
      o.kind === 'inject'
        ? 'inject'
        : o.kind === 'skip'
          ? 'skip'
          : r.allowedInvalid
            ? 'allow-invalid'
            : 'deny';
    const ms = end({ outcome: label }) * 1000;
    // dryRun: same answer, but no side effects, and counters are side effects too.
    if (!r.dryRun) {
      if (o.kind === 'inject') metrics.injections.inc({ namespace: r.namespace ?? '', mode: o.mode });
      else if (o.kind === 'skip') metrics.skips.inc({ reason: o.reason });
      else if (r.allowedInvalid) metrics.invalidAllowed.inc({ code: o.error.code });
      else metrics.denials.inc({ code: o.error.code });
    }
    const fields = {
      uid: r.uid,
      namespace: r.namespace,
      pod: r.name,
      dryRun: r.dryRun,
      ms: Math.round(ms * 100) / 100,
    };
    if (o.kind === 'inject') log.info({ ...fields, mode: o.mode, ops: o.patch.length }, 'injected');
    else if (o.kind === 'skip') {
      // Pods that did not opt in are the bulk and say nothing; every other skip is worth a line.
      if (o.reason === 'not-opted-in') log.debug({ ...fields, reason: o.reason }, 'skipped');
      else log.info({ ...fields, reason: o.reason }, 'skipped');
    } else {
      // The code and the annotation say why; the message is not logged, because it may quote an
      // annotation's value, and a value pasted by mistake into `secret-<name>` can be a secret.
      const msg = r.allowedInvalid ? 'admitted without injection' : 'denied';
      log.info({ ...fields, code: o.error.code, where: o.error.where }, msg);
    }
    return r.review;
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    // Fastify's own errors (body too large, bad JSON, wrong content type). V8's JSON errors quote the
    // body, which may hold a secret, so neither the log nor the answer carries the message: a fixed
    // text and fastify's error code only.
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    const what =
      status === 500
        ? 'internal error'
        : status === 413
          ? 'the request body is too large'
          : status === 415
            ? 'the request body must be application/json'
            : 'the request body is not a JSON AdmissionReview';
    const reason =
      status === 500
        ? 'internal'
        : status === 413
          ? 'body-too-large'
          : status === 415
            ? 'bad-content-type'
            : 'bad-json';
    metrics.requestErrors.inc({ status: String(status), reason });
    log.warn({ status, code: err.code }, what);
    void reply.code(status).send({
      code: status === 500 ? 'SK_ERR_INTERNAL' : 'SK_ERR_MANIFEST_INVALID',
      message: err.code ? `${what} (${err.code})` : what,
    });
  });
  // The instance is typed with pino's Logger; callers only need the generic Fastify surface.
  return app as unknown as FastifyInstance;
}

export interface ServeOptions {
  readonly configFile?: string;
  readonly port: number;
  readonly host: string;
  readonly tlsCert: string;
  readonly tlsKey: string;
  readonly logger?: Logger;
  /** Use polling for the TLS file watch (filesystems without inotify). */
  readonly tlsPolling?: boolean;
  /** How often /version is re-read for `nativeSidecars: auto` (default 10 minutes). */
  readonly versionRecheckMs?: number;
}

export interface RunningServer {
  readonly app: FastifyInstance;
  readonly port: number;
  /** Stop accepting, finish in-flight requests, stop watching the TLS files. */
  close(): Promise<void>;
}

/**
 * Load config and TLS, listen over HTTPS, hot-reload the certificate when its files change
 * (`setSecureContext`: new handshakes get the new pair, open connections keep theirs).
 */
export async function serve(o: ServeOptions): Promise<RunningServer> {
  const config = loadWebhookConfig(o.configFile);
  const log =
    o.logger ??
    createLogger({
      name: 'sidekey-webhook',
      level: process.env.SIDEKEY_LOG_LEVEL ?? config.logLevel ?? 'info',
      // One line per admission: written asynchronously, so the request path never waits on a
      // full stderr pipe (a synchronous write cost about a sixth of the server's CPU); flushed on close.
      destination: pino.destination({ fd: 2, sync: false }) as unknown as NodeJS.WritableStream,
    });
  // What `auto` means: from the config, else the API server's /version, re-read periodically so an
  // upgraded control plane is noticed without a restart.
  let ctx: PipelineContext;
  const versionWatch = new NativeSidecarWatch(
    config,
    () => discoverKubernetesVersion(log),
    log,
    (native) => {
      ctx = createPipelineContext(config, { nativeSidecars: native });
    },
  );
  await versionWatch.refresh();
  ctx = createPipelineContext(config, { nativeSidecars: versionWatch.native });
  log.info(
    { nativeSidecars: versionWatch.native, kubernetesVersion: versionWatch.version },
    'injection mode for auto',
  );
  versionWatch.start(o.versionRecheckMs);
  const pair = readKeyPair(o.tlsCert, o.tlsKey);
  const metrics = createMetrics();
  metrics.tlsNotAfter.set(notAfter(pair));
  const app = buildApp(config, { tls: pair, logger: log, ctx: () => ctx, metrics });
  const watcher = watchKeyPair(
    o.tlsCert,
    o.tlsKey,
    pair,
    (next) => {
      const server = app.server as unknown as { setSecureContext(o: { cert: Buffer; key: Buffer }): void };
      server.setSecureContext({ cert: next.cert, key: next.key });
      metrics.tlsReloads.inc({ result: 'ok' });
      metrics.tlsNotAfter.set(notAfter(next));
      log.info({ cert: o.tlsCert }, 'TLS certificate reloaded');
    },
    (e) => {
      metrics.tlsReloads.inc({ result: 'error' });
      log.warn({ code: e.code }, e.message);
    },
    { usePolling: o.tlsPolling },
  );
  try {
    await app.listen({ port: o.port, host: o.host });
  } catch (e) {
    // The file watch would keep the process alive: without this, a taken port hangs instead of exiting.
    versionWatch.stop();
    await watcher.close();
    await app.close();
    const why = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new SkError('SK_ERR_CLI_USAGE', `--host ${o.host} --port ${o.port}: cannot listen (${why})`, {
      where: '--port',
      cause: e,
    });
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  log.info({ port }, 'sidekey webhook listening (HTTPS)');
  return {
    app,
    port,
    async close() {
      versionWatch.stop();
      await watcher.close();
      await app.close();
      await new Promise<void>((resolve) => log.flush(() => resolve()));
    },
  };
}

/** Expiry of the (first) certificate of a pair, in Unix seconds. */
function notAfter(pair: KeyPair): number {
  return Math.floor(new Date(new X509Certificate(pair.cert).validTo).getTime() / 1000);
}

/**
 * The API server's version, for `nativeSidecars: auto`. Only in a cluster (service env set); any
 * failure means "unknown", which selects native sidecars (said once by {@link NativeSidecarWatch}).
 */
async function discoverKubernetesVersion(log: Logger): Promise<string | undefined> {
  if (!process.env.KUBERNETES_SERVICE_HOST) return undefined;
  try {
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    kc.loadFromCluster();
    const api = kc.makeApiClient(k8s.VersionApi);
    const v = await Promise.race([
      api.getCode(),
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timeout after 5s')), 5000).unref()),
    ]);
    return v.gitVersion;
  } catch (e) {
    log.debug({ err: (e as Error).message }, 'cannot read the Kubernetes version');
    return undefined;
  }
}

/** `sidekey webhook`: serve until SIGTERM/SIGINT, then shut down gracefully. */
export async function main(o: ServeOptions): Promise<void> {
  const running = await serve(o);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      running.app.log.info({ signal: sig }, 'shutting down');
      running.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
