import http from 'node:http';
import https from 'node:https';

/**
 * The HTTP transport under node-vault (its `request-promise` option): node:http/https with
 *
 * - a deadline for the whole request (`timeout`: connect, send, and the whole answer, not just
 *   inactivity: a server that trickles its answer a few bytes at a time is ended all the same),
 * - an AbortSignal (`signal`): the engine's per-call deadline and the agent's shutdown end the request
 *   and free its socket at once,
 * - answers read as JSON, bounded in size; an answer that is not what it claims is an error of its
 *   own ({@link VaultTransportError}: `not-json`, `truncated`, `too-large`), not "unreachable".
 *
 * node-vault passes through every option given to `client.request`, so `signal` and `timeout` reach
 * here; it resolves 2xx answers and rejects others with its ApiResponseError (status and body).
 */

/** Bodies above this are refused: a Vault answer is a few KiB; a runaway proxy must not fill memory. */
export const VAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface VaultTlsOptions {
  readonly ca?: string;
  readonly servername?: string;
  readonly rejectUnauthorized: boolean;
}

/** What node-vault hands its `request-promise` (our subset). */
export interface VaultRequestOptions {
  readonly uri: string;
  readonly method: string;
  readonly headers?: Record<string, string>;
  readonly json?: unknown;
  /** Whole-request deadline, ms. */
  readonly timeout?: number;
  readonly signal?: AbortSignal;
}

/** What node-vault expects back (the `request` library's full response, reduced). */
export interface VaultRawResponse {
  readonly statusCode: number;
  readonly body: unknown;
  readonly request: { readonly path: string };
}

/** A transport failure that is not a network error: the answer itself was wrong. */
export class VaultTransportError extends Error {
  override readonly name = 'VaultTransportError';
  constructor(
    readonly kind: 'not-json' | 'truncated' | 'too-large' | 'timeout',
    readonly status: number | undefined,
  ) {
    super(
      kind === 'timeout'
        ? 'request timed out'
        : `answer ${kind === 'not-json' ? 'is not JSON' : kind === 'truncated' ? 'cut off' : 'too large'}`,
    );
  }

  /** The `code` node's network errors have, so generic handling can tell the cases apart. */
  get code(): string {
    return this.kind === 'timeout' ? 'ETIMEDOUT' : `SK_${this.kind.toUpperCase().replace('-', '_')}`;
  }
}

export type VaultRequester = ((options: VaultRequestOptions) => Promise<VaultRawResponse>) & {
  /** node-vault calls `.defaults(rpDefaults)` once; its defaults (json, full response) are ours. */
  defaults(d: unknown): VaultRequester;
  /** Close idle keep-alive sockets. */
  destroy(): void;
};

export function vaultRequester(tls: VaultTlsOptions): VaultRequester {
  const agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets: 16 }),
    'https:': new https.Agent({
      keepAlive: true,
      maxSockets: 16,
      ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
      ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
      rejectUnauthorized: tls.rejectUnauthorized,
    }),
  };

  const request = (options: VaultRequestOptions): Promise<VaultRawResponse> =>
    new Promise<VaultRawResponse>((resolve, reject) => {
      const url = new URL(options.uri);
      const isHttps = url.protocol === 'https:';
      const payload =
        options.json !== undefined && typeof options.json === 'object'
          ? Buffer.from(JSON.stringify(options.json))
          : undefined;
      const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
      if (payload) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(payload.length);
      }
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        reject(e);
      };
      const req = (isHttps ? https : http).request(url, {
        method: options.method,
        headers,
        agent: agents[isHttps ? 'https:' : 'http:'],
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (options.timeout !== undefined && options.timeout > 0) {
        timer = setTimeout(() => fail(new VaultTransportError('timeout', undefined)), options.timeout);
      }
      req.on('error', fail);
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > VAULT_MAX_BODY_BYTES) fail(new VaultTransportError('too-large', status));
          else chunks.push(c);
        });
        // The server closed before the whole answer came (Content-Length not reached, chunking cut).
        res.on('aborted', () => fail(new VaultTransportError('truncated', status)));
        res.on('error', () => fail(new VaultTransportError('truncated', status)));
        res.on('end', () => {
          if (settled) return;
          if (!res.complete) return fail(new VaultTransportError('truncated', status));
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          if (text.trim() !== '') {
            try {
              body = JSON.parse(text);
            } catch {
              // A 2xx that is not JSON is a broken answer. An error status with an HTML page (a load
              // balancer's 502) is still that status: node-vault rejects it with the status.
              if (status >= 200 && status < 300) return fail(new VaultTransportError('not-json', status));
              body = undefined;
            }
          }
          settled = true;
          clearTimeout(timer);
          resolve({ statusCode: status, body, request: { path: url.pathname } });
        });
      });
      req.end(payload);
    });

  const requester = Object.assign(request, {
    defaults: () => requester,
    destroy: () => {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  });
  return requester;
}
