import http from 'node:http';
import https from 'node:https';

/**
 * A small HTTP client on node:http/node:https. Not `fetch`: loading undici (and its WebAssembly HTTP
 * parser) adds ~12 MiB to the agent's resident memory, node:http ~2 MiB (docs/backends.md, gcp).
 * Keep-alive agents, a per-request timeout, the caller's AbortSignal, and a cap on the body size.
 */

/** Answers larger than this are refused (a Secret Manager payload is at most 64 KiB, base64 in JSON). */
export const GCP_MAX_BODY = 1024 * 1024;

export interface HttpAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface HttpRequest {
  readonly method: 'GET' | 'POST';
  readonly url: URL;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/** A network-level failure (no HTTP answer): its `code` is ECONNREFUSED, ETIMEDOUT, ABORT_ERR, … */
export class NetError extends Error {
  override readonly name = 'NetError';
  constructor(readonly code: string) {
    super(`network error ${code}`);
  }
}

export class HttpClient {
  readonly #agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets: 8 }),
    'https:': new https.Agent({ keepAlive: true, maxSockets: 8 }),
  };

  request(req: HttpRequest): Promise<HttpAnswer> {
    const proto = req.url.protocol === 'https:' ? https : http;
    const agent = this.#agents[req.url.protocol === 'https:' ? 'https:' : 'http:'];
    return new Promise((resolve, reject) => {
      if (req.signal?.aborted) return reject(new NetError('ABORT_ERR'));
      const headers: Record<string, string> = { ...req.headers };
      if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
      let done = false;
      const finish = (err: NetError | undefined, answer?: HttpAnswer) => {
        if (done) return;
        done = true;
        req.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(answer!);
      };
      const r = proto.request(req.url, { method: req.method, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (b: Buffer) => {
          size += b.length;
          if (size > GCP_MAX_BODY) {
            r.destroy();
            finish(new NetError('EBODYTOOLARGE'));
          } else chunks.push(b);
        });
        res.on('end', () =>
          finish(undefined, {
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', (e: NodeJS.ErrnoException) => finish(new NetError(e.code ?? 'ECONNRESET')));
      });
      const onAbort = () => {
        r.destroy();
        finish(new NetError('ABORT_ERR'));
      };
      req.signal?.addEventListener('abort', onAbort, { once: true });
      r.setTimeout(req.timeoutMs, () => {
        r.destroy();
        finish(new NetError('ETIMEDOUT'));
      });
      r.on('error', (e: NodeJS.ErrnoException) => finish(new NetError(e.code ?? 'ECONNRESET')));
      r.end(req.body);
    });
  }

  close(): void {
    this.#agents['http:'].destroy();
    this.#agents['https:'].destroy();
  }
}

/** Parse a JSON answer body; undefined when it is not JSON (the caller reports a garbage answer). */
export function jsonBody(a: HttpAnswer): unknown {
  try {
    return JSON.parse(a.body.toString('utf8'));
  } catch {
    return undefined;
  }
}
