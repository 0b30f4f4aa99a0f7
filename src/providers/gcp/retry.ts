import { type HttpAnswer, type HttpClient, type HttpRequest, jsonBody, NetError } from './http.js';

/** Attempts per call (1 + retries) on 429, 500, 502, 503, 504 and network errors. */
export const GCP_MAX_ATTEMPTS = 4;
/** First backoff; doubled per retry, full jitter. */
export const GCP_BACKOFF_MS = 200;
/** A Retry-After (or google.rpc.RetryInfo) longer than this is not waited for inside one fetch: the engine backs off instead. */
export const GCP_MAX_RETRY_AFTER_MS = 10_000;

const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);

export interface RetryOptions {
  readonly attempts?: number;
  readonly backoffMs?: number;
  readonly maxRetryAfterMs?: number;
  readonly signal?: AbortSignal;
}

/** What {@link sendWithRetry} saw: the final answer (or network error) and how many attempts it took. */
export interface Sent {
  readonly answer: HttpAnswer | undefined;
  readonly error: NetError | undefined;
  readonly attempts: number;
  /** The server asked to wait longer than the bound: retries stopped early. */
  readonly retryAfterTooLong: boolean;
}

/**
 * Send a request (rebuilt per attempt, so a refreshed token is used), retrying throttling, 5xx and
 * network errors with exponential backoff. A `Retry-After` header (seconds or HTTP date) or a
 * `google.rpc.RetryInfo` detail in the error body sets the wait instead, when it is within the bound.
 */
export async function sendWithRetry(
  client: HttpClient,
  build: () => Promise<HttpRequest> | HttpRequest,
  opts: RetryOptions = {},
): Promise<Sent> {
  const attempts = opts.attempts ?? GCP_MAX_ATTEMPTS;
  const backoff = opts.backoffMs ?? GCP_BACKOFF_MS;
  const maxWait = opts.maxRetryAfterMs ?? GCP_MAX_RETRY_AFTER_MS;
  let answer: HttpAnswer | undefined;
  let error: NetError | undefined;
  for (let i = 1; ; i++) {
    answer = undefined;
    error = undefined;
    try {
      answer = await client.request(await build());
    } catch (e) {
      if (!(e instanceof NetError)) throw e;
      error = e;
    }
    const retryable = error ? error.code !== 'ABORT_ERR' : RETRY_STATUS.has(answer!.status);
    if (!retryable || i >= attempts) return { answer, error, attempts: i, retryAfterTooLong: false };
    const asked = answer ? retryAfterMs(answer) : undefined;
    if (asked !== undefined && asked > maxWait)
      return { answer, error, attempts: i, retryAfterTooLong: true };
    const wait = asked ?? Math.random() * backoff * 2 ** (i - 1);
    if (!(await sleep(wait, opts.signal)))
      return { answer, error: new NetError('ABORT_ERR'), attempts: i, retryAfterTooLong: false };
  }
}

/** The wait the server asked for: `Retry-After` (seconds or an HTTP date), else a RetryInfo detail. */
export function retryAfterMs(a: HttpAnswer, now = Date.now()): number | undefined {
  const h = a.headers['retry-after'];
  if (typeof h === 'string' && h.trim() !== '') {
    if (/^\d+$/.test(h.trim())) return Number(h.trim()) * 1000;
    const at = Date.parse(h);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  const body = jsonBody(a) as { error?: { details?: Array<Record<string, unknown>> } } | undefined;
  for (const d of body?.error?.details ?? []) {
    if (d?.['@type'] === 'type.googleapis.com/google.rpc.RetryInfo' && typeof d.retryDelay === 'string') {
      const m = /^(\d+(?:\.\d+)?)s$/.exec(d.retryDelay);
      if (m) return Number(m[1]) * 1000;
    }
  }
  return undefined;
}

/** Resolves true after `ms`, false at once if `signal` aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
