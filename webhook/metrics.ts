import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** The webhook's Prometheus metrics, on a registry of their own (one per app, so tests can build many). */
export interface WebhookMetrics {
  readonly registry: Registry;
  readonly duration: Histogram<'outcome'>;
  readonly injections: Counter<'namespace' | 'mode'>;
  readonly denials: Counter<'code'>;
  readonly skips: Counter<'reason'>;
  readonly invalidAllowed: Counter<'code'>;
  readonly tlsReloads: Counter<'result'>;
  readonly tlsNotAfter: Gauge;
  readonly requestErrors: Counter<'status' | 'reason'>;
  readonly inFlight: Gauge;
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): WebhookMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false)
    collectDefaultMetrics({ register: registry, prefix: 'sidekey_webhook_' });
  return {
    registry,
    duration: new Histogram({
      name: 'sidekey_webhook_request_duration_seconds',
      help: 'Time to answer one AdmissionReview, by outcome (inject, skip, deny, allow-invalid, bad-request).',
      labelNames: ['outcome'],
      // Admission must stay far below the API server's timeout; the interesting range is sub-10 ms.
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    injections: new Counter({
      name: 'sidekey_webhook_injections_total',
      help: 'Pods injected, by namespace and resolved mode (native, sidecar, init-only).',
      labelNames: ['namespace', 'mode'],
      registers: [registry],
    }),
    denials: new Counter({
      name: 'sidekey_webhook_denials_total',
      help: 'Pods denied, by SK_ERR code.',
      labelNames: ['code'],
      registers: [registry],
    }),
    skips: new Counter({
      name: 'sidekey_webhook_skips_total',
      help: 'Admission requests left unchanged, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    invalidAllowed: new Counter({
      name: 'sidekey_webhook_invalid_allowed_total',
      help: 'Pods with invalid annotations admitted without injection (onInvalidAnnotations: allow-without-injection), by SK_ERR code.',
      labelNames: ['code'],
      registers: [registry],
    }),
    tlsReloads: new Counter({
      name: 'sidekey_webhook_tls_reloads_total',
      help: 'Serving certificate reloads after its files changed, by result (ok, error: the last good pair stays).',
      labelNames: ['result'],
      registers: [registry],
    }),
    tlsNotAfter: new Gauge({
      name: 'sidekey_webhook_tls_certificate_not_after_seconds',
      help: 'Expiry (Unix time) of the certificate being served; alert well before it.',
      registers: [registry],
    }),
    requestErrors: new Counter({
      name: 'sidekey_webhook_request_errors_total',
      help: 'Requests to /mutate answered without an AdmissionReview, by HTTP status and reason (not-a-review, bad-json, body-too-large, bad-content-type, busy, internal).',
      labelNames: ['status', 'reason'],
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: 'sidekey_webhook_reviews_in_flight',
      help: 'Admission reviews being answered now (at most maxConcurrentReviews; the others wait).',
      registers: [registry],
    }),
  };
}
