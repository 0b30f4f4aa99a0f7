import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';

/**
 * The HTTPS the `azure:` provider needs (Key Vault's REST API and Entra's token endpoint), on Node's
 * own https module: a keep-alive agent, a per-request timeout, a bounded body. Plain Node keeps the
 * agent ~10 MiB smaller than the Azure SDK's pipeline (docs/backends.md, "Why no Azure SDK").
 */

export interface HttpResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** A transport failure: `code` is Node's (ECONNREFUSED, ENOTFOUND, …) or TIMEOUT, ABORTED, TOO_LARGE. */
export class TransportError extends Error {
  readonly code: string;
  constructor(code: string) {
    super(`transport error ${code}`);
    this.name = 'TransportError';
    this.code = code;
  }
}

export interface HttpsOptions {
  /** Trusted CAs instead of Node's (tests; a process trusts extra CAs with NODE_EXTRA_CA_CERTS). */
  readonly ca?: string | Buffer;
  /** Name resolution (tests map vault host names to loopback). */
  readonly lookup?: LookupFunction;
  readonly timeoutMs: number;
  /** Largest body accepted (Key Vault secrets are at most 25 KB). */
  readonly maxBodyBytes: number;
}

export class Https {
  readonly #agent: https.Agent;
  readonly #opts: HttpsOptions;

  constructor(opts: HttpsOptions) {
    this.#opts = opts;
    this.#agent = new https.Agent({
      keepAlive: true,
      maxSockets: 8,
      ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
      ...(opts.lookup !== undefined ? { lookup: opts.lookup } : {}),
    });
  }

  request(
    method: 'GET' | 'POST',
    url: URL,
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal,
  ): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new TransportError('ABORTED'));
      let settled = false;
      const done = (f: () => void) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        clearTimeout(timer);
        f();
      };
      const req = https.request(url, {
        method,
        agent: this.#agent,
        headers: {
          accept: 'application/json',
          'user-agent': 'sidekey',
          ...headers,
          ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
        },
      });
      const onAbort = () => {
        req.destroy();
        done(() => reject(new TransportError('ABORTED')));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => {
        req.destroy();
        done(() => reject(new TransportError('TIMEOUT')));
      }, this.#opts.timeoutMs);
      req.on('error', (e: NodeJS.ErrnoException) =>
        done(() => reject(new TransportError(e.code ?? 'ERROR'))),
      );
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > this.#opts.maxBodyBytes) {
            req.destroy();
            done(() => reject(new TransportError('TOO_LARGE')));
            return;
          }
          chunks.push(c);
        });
        res.on('error', (e: NodeJS.ErrnoException) =>
          done(() => reject(new TransportError(e.code ?? 'ERROR'))),
        );
        res.on('end', () =>
          done(() =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          ),
        );
      });
      req.end(body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

/** Statuses worth another attempt: throttling and the server's transient failures. */
export const RETRY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);
/** Transport failures worth another attempt (ENOTFOUND is an answer, not a hiccup). */
export const RETRY_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'TIMEOUT',
]);

export interface RetryPolicy {
  /** Attempts in all (1 + retries). */
  readonly attempts: number;
  /** First backoff (doubled each retry, full jitter) when the server gives no Retry-After. */
  readonly baseMs: number;
  /** A Retry-After longer than this is not waited for: the call fails and the engine backs off. */
  readonly maxRetryAfterMs: number;
}

/** What a call ended with after its retries. */
export type Attempted =
  | { readonly ok: true; readonly res: HttpResponse; readonly attempts: number }
  | { readonly ok: false; readonly error: TransportError; readonly attempts: number };

/** The wait a response asks for (Retry-After seconds or date, x-ms-retry-after-ms), in ms. */
export function retryAfterMs(res: HttpResponse, now = Date.now()): number | undefined {
  const ms = res.headers['x-ms-retry-after-ms'];
  if (typeof ms === 'string' && /^\d+$/.test(ms)) return Number(ms);
  const ra = res.headers['retry-after'];
  if (typeof ra !== 'string') return undefined;
  if (/^\d+$/.test(ra.trim())) return Number(ra.trim()) * 1000;
  const at = Date.parse(ra);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Run `send` until it answers with a non-retryable status, a non-retryable transport failure, or
 * `policy.attempts` are spent. Honours Retry-After (bounded); otherwise exponential backoff with jitter.
 */
export async function withRetry(
  send: () => Promise<HttpResponse>,
  policy: RetryPolicy,
  signal: AbortSignal,
): Promise<Attempted> {
  for (let attempt = 1; ; attempt++) {
    let waitMs: number;
    try {
      const res = await send();
      if (!RETRY_STATUSES.has(res.status) || attempt >= policy.attempts)
        return { ok: true, res, attempts: attempt };
      const asked = retryAfterMs(res);
      if (asked !== undefined && asked > policy.maxRetryAfterMs) return { ok: true, res, attempts: attempt };
      waitMs = asked ?? jitter(policy.baseMs, attempt);
    } catch (e) {
      const err = e instanceof TransportError ? e : new TransportError('ERROR');
      if (!RETRY_CODES.has(err.code) || attempt >= policy.attempts || signal.aborted)
        return { ok: false, error: err, attempts: attempt };
      waitMs = jitter(policy.baseMs, attempt);
    }
    if (!(await sleep(waitMs, signal)))
      return { ok: false, error: new TransportError('ABORTED'), attempts: attempt };
  }
}

function jitter(baseMs: number, attempt: number): number {
  return Math.round(Math.random() * baseMs * 2 ** (attempt - 1));
}

/** Sleep; false when aborted first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
