import http from 'node:http';
import https from 'node:https';

/**
 * Vault's HTTP transport: node:http/https with a keep-alive agent per protocol, and
 *
 * - a deadline for the whole request (`timeout`: connect, send, and the whole answer, not just
 *   inactivity: a server that trickles its answer a few bytes at a time is ended all the same),
 * - an AbortSignal (`signal`): the engine's per-call deadline and the agent's shutdown end the request
 *   and free its socket at once,
 * - answers read as JSON, bounded in size; an answer that is not what it claims is an error of its
 *   own ({@link VaultTransportError}: `not-json`, `truncated`, `too-large`), not "unreachable".
 *
 * It resolves with every answer that is HTTP (status and parsed body); what a status means is the
 * seam's business (http.ts). No client library: node-vault and the axios stack under it cost the
 * agent 60–105 ms of CPU at start-up and 5–25 MiB of resident memory (docs/agent.md).
 */

/** Bodies above this are refused: a Vault answer is a few KiB; a runaway proxy must not fill memory. */
export const VAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface VaultTlsOptions {
  readonly ca?: string;
  readonly servername?: string;
  readonly rejectUnauthorized: boolean;
}

/** One request: the full URL, the method, headers, and a JSON body if any. */
export interface VaultRequestOptions {
  readonly uri: string;
  readonly method: string;
  readonly headers?: Record<string, string>;
  readonly json?: unknown;
  /** Whole-request deadline, ms. */
  readonly timeout?: number;
  readonly signal?: AbortSignal;
}

/** An answer: its status and its body parsed as JSON (undefined when empty, or not JSON on an error status). */
export interface VaultRawResponse {
  readonly statusCode: number;
  readonly body: unknown;
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
              // balancer's 502) is still that status: the seam maps it by its status.
              if (status >= 200 && status < 300) return fail(new VaultTransportError('not-json', status));
              body = undefined;
            }
          }
          settled = true;
          clearTimeout(timer);
          resolve({ statusCode: status, body });
        });
      });
      req.end(payload);
    });

  return Object.assign(request, {
    destroy: () => {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  });
}
