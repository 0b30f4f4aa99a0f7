import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { tempDir } from '../../helpers/fixtures.ts';

/**
 * A small emulator of the Kubernetes API for Secrets, at the HTTP level, following the API docs:
 *
 * - `GET /api/v1/namespaces/{ns}/secrets/{name}` → the Secret (data base64) or a 404 `Status`;
 * - `GET /api/v1/namespaces/{ns}/secrets?watch=true&fieldSelector=metadata.name={name}` → a chunked
 *   stream of JSON lines `{"type":"ADDED|MODIFIED|DELETED","object":{…}}`; without `resourceVersion`
 *   it starts with a synthetic ADDED for the existing object ("get state and start at most recent");
 * - bearer-token authentication (401 `Status` otherwise) and per-token authorisation by resource
 *   name (403 `Status` like the real RBAC message otherwise);
 * - one global, increasing `resourceVersion`;
 * - list pagination ("Retrieving large results sets in chunks"): `limit` returns at most that many
 *   items and an opaque `metadata.continue` while more remain; a request with `continue` resumes
 *   there (a token for another resource or scope is a 400, like the API server's).
 *
 * Test controls: {@link K8sApiEmulator.put}, {@link K8sApiEmulator.remove}, failing the next watch
 * requests, cutting open watches, and counters of requests per kind.
 */
/**
 * A kubeconfig file (in a test temp dir) for a CLI talking to the emulator at `server` as the
 * `admin-token` user (the test gives that token its rights), in `namespace`.
 */
export function emulatorKubeconfig(server: string, namespace: string): string {
  return path.join(
    tempDir({
      config: `apiVersion: v1
kind: Config
clusters:
- name: emu
  cluster: {server: "${server}", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: admin-token}
contexts:
- name: emu
  context: {cluster: emu, user: admin, namespace: ${namespace}}
current-context: emu
`,
    }),
    'config',
  );
}

export class K8sApiEmulator {
  readonly server: http.Server;
  #rv = 100;
  readonly #secrets = new Map<string, { data: Record<string, string>; rv: string; uid: string }>();
  readonly #watches = new Set<{ ns: string; name: string; res: http.ServerResponse }>();
  /** token → allowed Secret names (`*` for all) in any namespace. */
  readonly tokens = new Map<string, Set<string> | '*'>();
  /** Number of upcoming watch requests to answer with this status instead of a stream. */
  failWatches = 0;
  failWatchStatus = 500;
  readonly counts = { get: 0, watch: 0, list: 0 };
  /** The `limit` of every list request (undefined: none), in order. */
  readonly listLimits: Array<number | undefined> = [];
  /**
   * Workload objects served by the list endpoints (`GET /api/v1/pods`, `/apis/apps/v1/deployments`,
   * `/apis/batch/v1/namespaces/{ns}/cronjobs`, …), keyed by resource plural (`pods`, `deployments`).
   */
  readonly workloads = new Map<string, Array<Record<string, unknown>>>();
  /**
   * Admission for `POST /api/v1/namespaces/{ns}/pods` (only `dryRun=All` is served: nothing is stored):
   * the pod as the mutating webhooks leave it, or a denial message (answered like the API server, a
   * 400 `Status` "admission webhook … denied the request: …"). Unset: no webhook, the pod comes back as sent.
   */
  admit?: (pod: Record<string, unknown>, namespace: string) => Record<string, unknown> | { denied: string };
  /** Every Authorization header seen (tests check the token file is used). */
  readonly seenTokens: string[] = [];

  constructor() {
    this.server = http.createServer((req, res) => this.#handle(req, res));
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.cutWatches();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  get openWatches(): number {
    return this.#watches.size;
  }

  /** Create or replace a Secret (string values are stored base64 like the API does). */
  put(ns: string, name: string, data: Record<string, string | Buffer>): string {
    const key = `${ns}/${name}`;
    const existed = this.#secrets.has(key);
    const rv = String(++this.#rv);
    const b64: Record<string, string> = {};
    for (const [k, v] of Object.entries(data)) b64[k] = Buffer.from(v).toString('base64');
    const uid = this.#secrets.get(key)?.uid ?? `uid-${rv}`;
    this.#secrets.set(key, { data: b64, rv, uid });
    this.#emit(ns, name, existed ? 'MODIFIED' : 'ADDED');
    return rv;
  }

  remove(ns: string, name: string): void {
    const key = `${ns}/${name}`;
    const s = this.#secrets.get(key);
    if (!s) return;
    s.rv = String(++this.#rv);
    this.#emit(ns, name, 'DELETED');
    this.#secrets.delete(key);
  }

  /** Close every open watch stream (like an API server restart or a timeout). */
  cutWatches(): void {
    for (const w of this.#watches) w.res.end();
    this.#watches.clear();
  }

  #object(ns: string, name: string) {
    const s = this.#secrets.get(`${ns}/${name}`);
    if (!s) return undefined;
    return {
      kind: 'Secret',
      apiVersion: 'v1',
      metadata: { name, namespace: ns, uid: s.uid, resourceVersion: s.rv },
      type: 'Opaque',
      data: s.data,
    };
  }

  #emit(ns: string, name: string, type: string): void {
    const object = this.#object(ns, name);
    if (!object) return;
    for (const w of this.#watches) {
      if (w.ns === ns && w.name === name) w.res.write(`${JSON.stringify({ type, object })}\n`);
    }
  }

  #status(res: http.ServerResponse, code: number, reason: string, message: string): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message,
        reason,
        code,
      }),
    );
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization ?? '';
    this.seenTokens.push(auth);
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    const allowed = this.tokens.get(token);
    if (!allowed) {
      this.#status(res, 401, 'Unauthorized', 'Unauthorized');
      return;
    }
    const one = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/.exec(url.pathname);
    const list = /^\/api\/v1\/namespaces\/([^/]+)\/secrets$/.exec(url.pathname);
    const forbid = (ns: string, name: string, verb: string) => {
      this.#status(
        res,
        403,
        'Forbidden',
        `secrets "${name}" is forbidden: User "system:serviceaccount:${ns}:app" cannot ${verb} resource "secrets" in API group "" in the namespace "${ns}"`,
      );
    };
    if (req.method === 'GET' && one) {
      this.counts.get += 1;
      const [ns, name] = [decodeURIComponent(one[1]!), decodeURIComponent(one[2]!)];
      if (allowed !== '*' && !allowed.has(name)) {
        forbid(ns, name, 'get');
        return;
      }
      const obj = this.#object(ns, name);
      if (!obj) {
        this.#status(res, 404, 'NotFound', `secrets "${name}" not found`);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
      return;
    }
    if (req.method === 'GET' && list && url.searchParams.get('watch') === 'true') {
      this.counts.watch += 1;
      const ns = decodeURIComponent(list[1]!);
      const sel = /^metadata\.name=(.+)$/.exec(url.searchParams.get('fieldSelector') ?? '');
      // RBAC resourceNames only authorises a watch narrowed to one name.
      if (!sel) {
        forbid(ns, '', 'watch');
        return;
      }
      const name = sel[1]!;
      if (allowed !== '*' && !allowed.has(name)) {
        forbid(ns, name, 'watch');
        return;
      }
      if (this.failWatches > 0) {
        this.failWatches -= 1;
        this.#status(res, this.failWatchStatus, 'InternalError', 'watch failed (test)');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      const w = { ns, name, res };
      this.#watches.add(w);
      req.on('close', () => this.#watches.delete(w));
      if (!url.searchParams.get('resourceVersion')) {
        const obj = this.#object(ns, name);
        if (obj) res.write(`${JSON.stringify({ type: 'ADDED', object: obj })}\n`);
      }
      return;
    }
    const podCreate = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname);
    if (req.method === 'POST' && podCreate) {
      const ns = decodeURIComponent(podCreate[1]!);
      if (url.searchParams.get('dryRun') !== 'All') {
        this.#status(res, 405, 'MethodNotAllowed', 'the emulator only serves dry-run pod creation');
        return;
      }
      let raw = '';
      req.on('data', (c) => {
        raw += c;
      });
      req.on('end', () => {
        const pod = JSON.parse(raw) as { metadata?: Record<string, unknown> };
        const meta = { ...pod.metadata, namespace: ns, uid: `dry-${this.#rv}` } as Record<string, unknown>;
        if (!meta.name && typeof meta.generateName === 'string') meta.name = `${meta.generateName}x7k2p`;
        const admitted = this.admit ? this.admit({ ...pod, metadata: meta }, ns) : { ...pod, metadata: meta };
        if ('denied' in admitted) {
          this.#status(
            res,
            400,
            'BadRequest',
            `admission webhook "inject.sidekey.io" denied the request: ${admitted.denied}`,
          );
          return;
        }
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify(admitted));
      });
      return;
    }
    const wl = /^\/(?:api\/v1|apis\/(?:apps|batch)\/v1)(?:\/namespaces\/([^/]+))?\/([a-z]+)$/.exec(
      url.pathname,
    );
    if (req.method === 'GET' && wl && wl[2] !== 'secrets') {
      this.counts.list += 1;
      const ns = wl[1] ? decodeURIComponent(wl[1]) : undefined;
      const all = (this.workloads.get(wl[2]!) ?? []).filter(
        (o) => ns === undefined || (o.metadata as { namespace?: string } | undefined)?.namespace === ns,
      );
      const limitParam = url.searchParams.get('limit');
      const limit = limitParam ? Number(limitParam) : undefined;
      this.listLimits.push(limit);
      const scope = `${wl[2]}/${ns ?? '*'}`;
      let offset = 0;
      const cont = url.searchParams.get('continue');
      if (cont) {
        let token: { scope?: string; offset?: number } = {};
        try {
          token = JSON.parse(Buffer.from(cont, 'base64url').toString());
        } catch {}
        if (token.scope !== scope || typeof token.offset !== 'number') {
          this.#status(res, 400, 'BadRequest', 'continue key is not valid');
          return;
        }
        offset = token.offset;
      }
      const end = limit && limit > 0 ? Math.min(all.length, offset + limit) : all.length;
      const next =
        end < all.length
          ? Buffer.from(JSON.stringify({ scope, offset: end })).toString('base64url')
          : undefined;
      res.writeHead(200, { 'content-type': 'application/json' });
      // Like the API server: list items carry no kind/apiVersion.
      res.end(
        JSON.stringify({
          kind: 'List',
          apiVersion: 'v1',
          metadata: {
            resourceVersion: String(this.#rv),
            ...(next ? { continue: next, remainingItemCount: all.length - end } : {}),
          },
          items: all.slice(offset, end).map(({ kind: _k, apiVersion: _a, ...rest }) => rest),
        }),
      );
      return;
    }
    this.#status(res, 404, 'NotFound', 'the server could not find the requested resource');
  }
}
