import net from 'node:net';

/**
 * A fault-injecting TCP proxy on loopback, in front of a real HTTP server (OpenBao, moto). In `pass`
 * mode it forwards bytes both ways; in a fault mode it answers (or does not) on its own, the way a
 * broken backend, load balancer or network does:
 *
 * - `hang`: accepts the connection and the request, never answers (a black-holed backend).
 * - `slow`: forwards the request, then trickles the answer back a few bytes at a time (every request
 *   still "makes progress", so an inactivity timeout never fires).
 * - `refused`: stops listening: connections are refused (ECONNREFUSED).
 * - `reset`: accepts, reads the request, then resets the connection (ECONNRESET).
 * - `500` / `429`: answers HTTP 500 / 429 with a JSON error body (429 as AWS throttling).
 * - `garbage`: answers `200 OK`, `Content-Type: application/json`, with a body that is not JSON.
 * - `truncated`: answers `200 OK` with `Content-Length: 4096` and 20 bytes, then closes.
 *
 * The decision is per request (per chunk from the client), so a keep-alive connection opened before a
 * fault sees the fault too. Leaving `hang` or `slow` closes the connections held in that mode (a
 * backend that comes back has restarted). Requests are counted (request lines seen) whatever the mode.
 */
export type FaultMode =
  | 'pass'
  | 'hang'
  | 'slow'
  | 'refused'
  | 'reset'
  | '500'
  | '429'
  | 'garbage'
  | 'truncated';

export const FAULT_MODES: readonly Exclude<FaultMode, 'pass'>[] = [
  'hang',
  'slow',
  'refused',
  'reset',
  '500',
  '429',
  'garbage',
  'truncated',
];

export interface FaultProxy {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  readonly mode: FaultMode;
  /** Switch modes; resolves once the listener is in the new state (refused: closed; else listening). */
  setMode(mode: FaultMode): Promise<void>;
  /** HTTP requests seen so far (all modes; none in `refused`: nothing gets through). */
  readonly requests: number;
  /** Request times (epoch ms), in order. */
  readonly requestTimes: readonly number[];
  close(): Promise<void>;
}

const REQUEST_LINE = /(?:GET|PUT|POST|DELETE|HEAD|PATCH|OPTIONS|LIST) \S+ HTTP\/1\.[01]\r\n/g;

/** Bytes per tick and tick length of `slow`: 8 bytes every 250 ms (a 1 KiB answer takes 32 s). */
const SLOW_BYTES = 8;
const SLOW_TICK_MS = 250;

function canned(status: number, reason: string, body: string, extra: Record<string, string> = {}): Buffer {
  const headers = {
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(body)),
    Connection: 'close',
    ...extra,
  };
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return Buffer.from(`HTTP/1.1 ${status} ${reason}\r\n${head}\r\n${body}`);
}

const ANSWERS: Partial<Record<FaultMode, Buffer>> = {
  // Vault reads `errors`; the AWS JSON protocol reads `__type` (and x-amzn-errortype).
  '500': canned(500, 'Internal Server Error', '{"errors":["injected fault"],"__type":"InternalFailure"}', {
    'x-amzn-errortype': 'InternalFailure',
  }),
  '429': canned(429, 'Too Many Requests', '{"errors":["rate limited"],"__type":"ThrottlingException"}', {
    'x-amzn-errortype': 'ThrottlingException',
  }),
  garbage: canned(200, 'OK', '<html>\u0000\u0001 not json {{{ \u00ff'),
  truncated: Buffer.from(
    'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"data":{"data":{"',
  ),
};

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let mode: FaultMode = 'pass';
  const times: number[] = [];
  /** Client sockets by the mode they were last held in (hang/slow), to close when that mode ends. */
  const held = new Map<net.Socket, FaultMode>();
  const clients = new Set<net.Socket>();

  const server = net.createServer((client) => {
    clients.add(client);
    let upstream: net.Socket | undefined;
    const drip: Buffer[] = [];
    let dripTimer: NodeJS.Timeout | undefined;
    const closeAll = () => {
      clients.delete(client);
      held.delete(client);
      if (dripTimer) clearInterval(dripTimer);
      client.destroy();
      upstream?.destroy();
    };
    client.on('error', closeAll);
    client.on('close', closeAll);

    const toClient = (chunk: Buffer) => {
      if (mode !== 'slow' && drip.length === 0) {
        client.write(chunk);
        return;
      }
      drip.push(chunk);
      held.set(client, 'slow');
      dripTimer ??= setInterval(() => {
        const head = drip[0];
        if (!head) return;
        const piece = head.subarray(0, SLOW_BYTES);
        if (head.length <= SLOW_BYTES) drip.shift();
        else drip[0] = head.subarray(SLOW_BYTES);
        client.write(piece);
      }, SLOW_TICK_MS);
    };

    client.on('data', (chunk: Buffer) => {
      const n = chunk.toString('latin1').match(REQUEST_LINE)?.length ?? 0;
      for (let i = 0; i < n; i++) times.push(Date.now());
      switch (mode) {
        case 'pass':
        case 'slow':
          if (!upstream) {
            upstream = net.connect(target.port, target.host);
            upstream.on('data', toClient);
            upstream.on('error', closeAll);
            upstream.on('close', () => {
              if (drip.length === 0) closeAll();
            });
          }
          upstream.write(chunk);
          return;
        case 'hang':
          held.set(client, 'hang');
          return;
        case 'reset':
          client.resetAndDestroy();
          return;
        case 'refused':
          client.destroy();
          return;
        default:
          client.end(ANSWERS[mode] ?? Buffer.alloc(0));
      }
    });
  });
  server.on('error', () => {});

  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get mode() {
      return mode;
    },
    get requests() {
      return times.length;
    },
    get requestTimes() {
      return times;
    },
    async setMode(next: FaultMode) {
      const prev = mode;
      mode = next;
      if (prev === next) return;
      // A backend that comes back from a hang (or a crawl) has dropped those connections.
      if (prev === 'hang' || prev === 'slow') {
        for (const [s, m] of held) if (m === prev) s.destroy();
      }
      if (next === 'refused') {
        for (const s of clients) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      } else if (prev === 'refused') {
        await listen(port);
      }
    },
    async close() {
      for (const s of clients) s.destroy();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
