import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import jsonpatch from 'fast-json-patch';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { SECRET_KEYS, splitPem, TlsManager, type TlsManagerOptions } from '../../webhook/tls-manager.js';
import { runCli, spawnCli } from '../helpers/cli.js';

/**
 * An emulator of the Kubernetes REST API endpoints the TLS manager uses, following the documented
 * semantics: JSON bodies, `Status` objects on errors, resourceVersion optimistic concurrency on PUT
 * (409 Conflict), 409 AlreadyExists on POST, JSON Patch (application/json-patch+json) on
 * mutatingwebhookconfigurations, and Lease times in MicroTime format (RFC 3339, 6 fractional digits).
 */
// biome-ignore lint/suspicious/noExplicitAny: tests read deep fields of arbitrary API objects
type ApiObject = Record<string, any>;

class KubeApiEmulator {
  readonly objects = new Map<string, Record<string, unknown>>();
  /** Every write: method, path, and the bearer token that identifies the caller. */
  readonly writes: { method: string; path: string; user: string }[] = [];
  private rv = 100;
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString('utf8');
      });
      req.on('end', () => this.handle(req, res, body));
    });
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise((r) => this.server?.close(r));
  }

  put(kind: string, ns: string, obj: Record<string, unknown>): void {
    const meta = obj.metadata as Record<string, unknown>;
    meta.resourceVersion = String(++this.rv);
    this.objects.set(`${kind}/${ns}/${meta.name as string}`, obj);
  }

  get(kind: string, ns: string, name: string): ApiObject | undefined {
    return this.objects.get(`${kind}/${ns}/${name}`) as ApiObject | undefined;
  }

  private handle(req: IncomingMessage, res: ServerResponse, raw: string): true {
    const url = new URL(req.url ?? '/', 'http://x');
    const m =
      /^\/api\/v1\/namespaces\/([^/]+)\/(secrets)(?:\/([^/]+))?$/.exec(url.pathname) ??
      /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/(leases)(?:\/([^/]+))?$/.exec(url.pathname) ??
      /^\/apis\/admissionregistration\.k8s\.io\/v1\/()(mutatingwebhookconfigurations)\/([^/]+)$/.exec(
        url.pathname,
      );
    const send = (code: number, obj: unknown): true => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
      return true;
    };
    const status = (code: number, reason: string, message: string): true =>
      send(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code });
    if (!m) return status(404, 'NotFound', `no route ${req.method} ${url.pathname}`);
    const [, ns = '', kind = '', name] = m;
    const user = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    const method = req.method ?? 'GET';
    if (method !== 'GET') this.writes.push({ method, path: url.pathname, user });
    const key = `${kind}/${ns}/${name ?? ''}`;
    const existing = this.objects.get(key);
    if (method === 'GET') {
      return existing ? send(200, existing) : status(404, 'NotFound', `${kind} "${name}" not found`);
    }
    if (method === 'PATCH') {
      if (!existing) return status(404, 'NotFound', `${kind} "${name}" not found`);
      if (req.headers['content-type'] !== 'application/json-patch+json') {
        return status(
          415,
          'UnsupportedMediaType',
          `the emulator only takes JSON Patch, not ${req.headers['content-type']}`,
        );
      }
      try {
        const next = jsonpatch.applyPatch(
          structuredClone(existing),
          JSON.parse(raw),
          true,
          false,
        ).newDocument;
        this.put(kind, ns, next as Record<string, unknown>);
        return send(200, next);
      } catch (e) {
        return status(422, 'Invalid', `patch failed: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    const obj = JSON.parse(raw) as ApiObject;
    if (kind === 'leases') {
      for (const f of ['acquireTime', 'renewTime']) {
        const v = obj.spec?.[f];
        if (v !== undefined && !/\.\d{6}Z$/.test(String(v))) {
          return status(400, 'BadRequest', `spec.${f}: "${v}" is not a MicroTime`);
        }
      }
    }
    if (method === 'POST') {
      const k = `${kind}/${ns}/${obj.metadata?.name}`;
      if (this.objects.has(k))
        return status(409, 'AlreadyExists', `${kind} "${obj.metadata?.name}" already exists`);
      this.put(kind, ns, obj);
      return send(201, obj);
    }
    if (method === 'PUT') {
      if (!existing) return status(404, 'NotFound', `${kind} "${name}" not found`);
      const want = obj.metadata?.resourceVersion;
      if (want !== undefined && want !== (existing.metadata as Record<string, unknown>).resourceVersion) {
        return status(
          409,
          'Conflict',
          'the object has been modified; please apply your changes to the latest version',
        );
      }
      this.put(kind, ns, obj);
      return send(200, obj);
    }
    return status(405, 'MethodNotAllowed', method);
  }
}

const NS = 'sk-system';
const SVC = 'sidekey';
const DAY = 86_400_000;

function kubeConfig(server: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'emu', server, skipTLSVerify: true }],
    users: [{ name: token, token }],
    contexts: [{ name: 'emu', cluster: 'emu', user: token }],
    currentContext: 'emu',
  });
  return kc;
}

function webhookConfig(): Record<string, unknown> {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'sidekey-webhook' },
    webhooks: [
      {
        name: 'inject.sidekey.io',
        clientConfig: { service: { name: SVC, namespace: NS, path: '/mutate' } },
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
      },
    ],
  };
}

function b64d(s: string | undefined): string {
  return Buffer.from(s ?? '', 'base64').toString('utf8');
}

/** Collects log lines so that tests can check that no key material is ever logged. */
function logSink(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { lines, stream };
}

/** TLS handshake against 127.0.0.1 with the service's DNS name, trusting only `ca`. */
function handshake(
  port: number,
  ca: string,
): Promise<{ authorized: boolean; error?: string; serial: string }> {
  return new Promise((resolve) => {
    const s = tls.connect(
      { host: '127.0.0.1', port, servername: `${SVC}.${NS}.svc`, ca, rejectUnauthorized: false },
      () => {
        const cert = s.getPeerCertificate();
        resolve({
          authorized: s.authorized,
          error: s.authorizationError?.toString(),
          serial: cert.serialNumber,
        });
        s.end();
      },
    );
    s.on('error', (e) => resolve({ authorized: false, error: e.message, serial: '' }));
  });
}

describe('self-managed webhook TLS (API emulator)', () => {
  let api: KubeApiEmulator;
  let dir: string;
  const managers: TlsManager[] = [];
  const log = logSink();

  function manager(token: string, extra: Partial<TlsManagerOptions> = {}): TlsManager {
    const m = new TlsManager({
      kubeConfig: kubeConfig(api.url, token),
      namespace: NS,
      secretName: 'sidekey-tls',
      webhookConfigName: 'sidekey-webhook',
      leaseName: 'sidekey-tls-writer',
      serviceName: SVC,
      certFile: path.join(dir, token, 'tls.crt'),
      keyFile: path.join(dir, token, 'tls.key'),
      identity: `pod-${token}`,
      syncIntervalMs: 200,
      leaseDurationMs: 1500,
      log: createLogger({ destination: log.stream, level: 'debug' }),
      ...extra,
    });
    managers.push(m);
    return m;
  }

  beforeEach(async () => {
    api = new KubeApiEmulator();
    await api.start();
    api.put('mutatingwebhookconfigurations', '', webhookConfig());
    dir = await mkdtemp(path.join(tmpdir(), 'sk-tls-'));
  });

  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.stop()));
    await api.stop();
    await rm(dir, { recursive: true, force: true });
    const all = log.lines.join('');
    expect(all).not.toContain('PRIVATE KEY');
    expect(all).not.toContain('BEGIN CERTIFICATE');
  });

  it('first start creates the Secret, patches the caBundle and writes the serving files', async () => {
    const m = manager('a', { extraHosts: ['127.0.0.1'] });
    await m.start();

    const secret = api.get('secrets', NS, 'sidekey-tls');
    expect(secret).toBeDefined();
    const ca = new X509Certificate(b64d(secret?.data[SECRET_KEYS.caCert]));
    const leaf = new X509Certificate(b64d(secret?.data[SECRET_KEYS.cert]));
    expect(ca.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.subjectAltName).toContain(`DNS:${SVC}.${NS}.svc`);
    expect(leaf.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(leaf.checkPrivateKey(createPrivateKey(b64d(secret?.data[SECRET_KEYS.key])))).toBe(true);

    const mwc = api.get('mutatingwebhookconfigurations', '', 'sidekey-webhook');
    expect(b64d(mwc?.webhooks[0].clientConfig.caBundle)).toBe(b64d(secret?.data[SECRET_KEYS.caBundle]));
    expect(splitPem(b64d(mwc?.webhooks[0].clientConfig.caBundle))).toEqual([
      b64d(secret?.data[SECRET_KEYS.caCert]),
    ]);

    expect(await readFile(path.join(dir, 'a', 'tls.crt'), 'utf8')).toBe(b64d(secret?.data[SECRET_KEYS.cert]));
    expect(await readFile(path.join(dir, 'a', 'tls.key'), 'utf8')).toBe(b64d(secret?.data[SECRET_KEYS.key]));
    // The Secret was created (POST) because none existed; the lease too.
    expect(api.writes.map((w) => `${w.method} ${w.path.split('/').slice(-1)[0]}`)).toEqual(
      expect.arrayContaining(['POST leases', 'PATCH sidekey-webhook', 'POST secrets']),
    );
    // A second round changes nothing: no new certificate, no patch.
    const before = api.writes.filter((w) => w.method !== 'PUT' || !w.path.includes('leases')).length;
    const r = await m.syncOnce();
    expect(r).toMatchObject({
      leader: true,
      rotatedCa: false,
      rotatedCert: false,
      patchedBundle: false,
      wroteFiles: false,
    });
    expect(api.writes.filter((w) => w.method !== 'PUT' || !w.path.includes('leases')).length).toBe(before);
  });

  it('with two replicas exactly one writes; the other serves the same certificate and takes over', async () => {
    // As the chart installs it: the Secret and the Lease exist, empty (RBAC then needs no create).
    api.put('secrets', NS, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'sidekey-tls', namespace: NS },
      type: 'Opaque',
    });
    api.put('leases', NS, {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'sidekey-tls-writer', namespace: NS },
      spec: {},
    });
    const a = manager('a');
    const b = manager('b');
    await Promise.all([a.start(), b.start()]);
    expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
    const leader = a.isLeader() ? 'a' : 'b';
    const follower = leader === 'a' ? 'b' : 'a';

    const dataWriters = new Set(api.writes.filter((w) => !w.path.includes('/leases')).map((w) => w.user));
    expect([...dataWriters]).toEqual([leader]);
    expect(api.writes.some((w) => w.method === 'POST')).toBe(false);
    const [ca, cb] = await Promise.all([
      readFile(path.join(dir, 'a', 'tls.crt'), 'utf8'),
      readFile(path.join(dir, 'b', 'tls.crt'), 'utf8'),
    ]);
    expect(ca).toBe(cb);
    expect(ca).toContain('BEGIN CERTIFICATE');

    // The leader goes away without releasing the lease: the follower takes over once it expires.
    await (leader === 'a' ? a : b).stop();
    const other = follower === 'a' ? a : b;
    const deadline = Date.now() + 10_000;
    while (!other.isLeader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(other.isLeader()).toBe(true);
    expect(api.get('leases', NS, 'sidekey-tls-writer')?.spec.holderIdentity).toBe(`pod-${follower}`);
    // Taking over re-issues nothing: the stored certificate is still good.
    expect(api.writes.filter((w) => w.user === follower && !w.path.includes('/leases'))).toEqual([]);
  });

  it('judges lease expiry on its own clock: a skewed renewTime does not trigger a takeover', async () => {
    // Another replica holds the lease; its node's clock is an hour behind, so renewTime looks stale.
    const holder = (renewTime: string) => ({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'sidekey-tls-writer', namespace: NS },
      spec: { holderIdentity: 'pod-other', leaseDurationSeconds: 2, renewTime },
    });
    api.put('leases', NS, holder(new Date(Date.now() - 3_600_000).toISOString().replace('Z', '000Z')));
    const m = manager('a', { leaseDurationMs: 2000 });
    expect(await m.renewLeadership()).toBe(false);
    await new Promise((r) => setTimeout(r, 600));
    // The holder renews (the record changes): still not expired.
    api.put('leases', NS, holder(new Date(Date.now() - 3_599_000).toISOString().replace('Z', '000Z')));
    expect(await m.renewLeadership()).toBe(false);
    await new Promise((r) => setTimeout(r, 600));
    expect(await m.renewLeadership()).toBe(false);
    // The holder stops renewing: after a full lease duration without a change, we take over.
    await new Promise((r) => setTimeout(r, 2100));
    expect(await m.renewLeadership()).toBe(true);
    expect(api.get('leases', NS, 'sidekey-tls-writer')?.spec).toMatchObject({
      holderIdentity: 'pod-a',
      leaseTransitions: 1,
    });
  });

  it('renews before expiry: a new serving certificate alone, then a new CA with the old one kept in the bundle', async () => {
    let clock = Date.now() - 70 * DAY;
    const m = manager('a', {
      now: () => clock,
      caValidityMs: 100 * DAY,
      certValidityMs: 30 * DAY,
    });
    expect((await m.syncOnce()).rotatedCa).toBe(true);
    const first = api.get('secrets', NS, 'sidekey-tls');
    const ca1 = b64d(first?.data[SECRET_KEYS.caCert]);
    const cert1 = b64d(first?.data[SECRET_KEYS.cert]);

    clock += 15 * DAY; // half of the certificate's validity: nothing due yet
    expect(await m.syncOnce()).toMatchObject({ rotatedCa: false, rotatedCert: false, patchedBundle: false });

    clock += 6 * DAY; // 21 of 30 days: past 2/3, the serving certificate is renewed, the CA is not
    expect(await m.syncOnce()).toMatchObject({
      rotatedCa: false,
      rotatedCert: true,
      patchedBundle: false,
      wroteFiles: true,
    });
    const second = api.get('secrets', NS, 'sidekey-tls');
    expect(b64d(second?.data[SECRET_KEYS.caCert])).toBe(ca1);
    expect(b64d(second?.data[SECRET_KEYS.cert])).not.toBe(cert1);

    clock += 49 * DAY; // day 70 of the CA's 100: the CA is renewed too
    api.writes.length = 0;
    expect(await m.syncOnce()).toMatchObject({ rotatedCa: true, rotatedCert: true, patchedBundle: true });
    const third = api.get('secrets', NS, 'sidekey-tls');
    const ca2 = b64d(third?.data[SECRET_KEYS.caCert]);
    expect(ca2).not.toBe(ca1);
    const bundle = splitPem(b64d(third?.data[SECRET_KEYS.caBundle]));
    expect(bundle).toEqual([ca2, ca1]);
    const mwc = api.get('mutatingwebhookconfigurations', '', 'sidekey-webhook');
    expect(splitPem(b64d(mwc?.webhooks[0].clientConfig.caBundle))).toEqual([ca2, ca1]);
    // The API server learns the new CA before the certificate it signed is stored for the replicas.
    const order = api.writes.filter((w) => !w.path.includes('/leases')).map((w) => w.method);
    expect(order).toEqual(['PATCH', 'PUT']);

    clock += 31 * DAY; // the first CA has expired (day 101): it leaves the bundle at the next CA renewal
    clock += 40 * DAY;
    expect((await m.syncOnce()).rotatedCa).toBe(true);
    const fourth = splitPem(b64d(api.get('secrets', NS, 'sidekey-tls')?.data[SECRET_KEYS.caBundle]));
    expect(fourth).toHaveLength(2);
    expect(fourth).not.toContain(ca1);
    expect(fourth[1]).toBe(ca2);
  });

  it('after the Secret is lost, the new bundle still trusts the CA the API server had', async () => {
    const m = manager('a');
    await m.syncOnce();
    const ca1 = b64d(api.get('secrets', NS, 'sidekey-tls')?.data[SECRET_KEYS.caCert]);
    api.objects.delete(`secrets/${NS}/sidekey-tls`); // e.g. deleted by hand or by an uninstall
    expect(await m.syncOnce()).toMatchObject({ rotatedCa: true, patchedBundle: true });
    const secret = api.get('secrets', NS, 'sidekey-tls');
    const ca2 = b64d(secret?.data[SECRET_KEYS.caCert]);
    expect(ca2).not.toBe(ca1);
    expect(splitPem(b64d(secret?.data[SECRET_KEYS.caBundle]))).toEqual([ca2, ca1]);
    const mwc = api.get('mutatingwebhookconfigurations', '', 'sidekey-webhook');
    expect(splitPem(b64d(mwc?.webhooks[0].clientConfig.caBundle))).toEqual([ca2, ca1]);
  });

  it('a served TLS connection verifies with the bundle before and after a CA rotation', async () => {
    let clock = Date.now() - 70 * DAY;
    const m = manager('a', { now: () => clock, caValidityMs: 100 * DAY, certValidityMs: 90 * DAY });
    await m.syncOnce();
    const certFile = path.join(dir, 'a', 'tls.crt');
    const keyFile = path.join(dir, 'a', 'tls.key');
    const context = async () => ({ cert: await readFile(certFile), key: await readFile(keyFile) });
    const server = tls.createServer(await context(), (s) => s.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const bundle = (): string =>
      b64d(
        api.get('mutatingwebhookconfigurations', '', 'sidekey-webhook')?.webhooks[0].clientConfig.caBundle,
      );
    try {
      const bundle1 = bundle();
      const before = await handshake(port, bundle1);
      expect(before).toMatchObject({ authorized: true });

      clock = Date.now(); // day 70: CA and certificate renewed
      expect(await m.syncOnce()).toMatchObject({ rotatedCa: true, wroteFiles: true });
      const bundle2 = bundle();
      // A replica that has not reloaded yet still serves the old certificate: still trusted.
      const lagging = await handshake(port, bundle2);
      expect(lagging).toMatchObject({ authorized: true, serial: before.serial });

      server.setSecureContext(await context()); // what the webhook's hot reload does
      const after = await handshake(port, bundle2);
      expect(after.authorized).toBe(true);
      expect(after.serial).not.toBe(before.serial);
      // Why the bundle must be patched first: the old bundle alone does not trust the new certificate.
      const stale = await handshake(port, bundle1);
      expect(stale.authorized).toBe(false);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('names the API call when RBAC forbids it, without secrets in the message', async () => {
    api.put('secrets', NS, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'sidekey-tls', namespace: NS },
      type: 'Opaque',
    });
    api.objects.delete('mutatingwebhookconfigurations//sidekey-webhook');
    const m = manager('a');
    await expect(m.syncOnce()).rejects.toMatchObject({
      code: 'SK_ERR_TLS',
      message: expect.stringMatching(/get mutatingwebhookconfigurations\/sidekey-webhook failed: HTTP 404/),
    });
    // Nothing was stored: a certificate whose CA the API server cannot learn is useless.
    expect(api.get('secrets', NS, 'sidekey-tls')?.data).toBeUndefined();
  });

  it('`sidekey webhook --tls-self-managed` bootstraps its certificate, then serves HTTPS trusted by the caBundle', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createTcpServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const kubeconfig = path.join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'emu', cluster: { server: api.url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'cli', user: { token: 'cli' } }],
        contexts: [{ name: 'emu', context: { cluster: 'emu', user: 'cli' } }],
        'current-context': 'emu',
      }),
    );
    const proc = spawnCli(
      [
        'webhook',
        `--port=${port}`,
        '--host=127.0.0.1',
        `--tls-cert=${path.join(dir, 'cli', 'tls.crt')}`,
        `--tls-key=${path.join(dir, 'cli', 'tls.key')}`,
        '--tls-self-managed',
        '--tls-secret=sidekey-tls',
        '--tls-lease=sidekey-tls-writer',
        '--webhook-config=sidekey-webhook',
        `--service=${SVC}`,
        `--namespace=${NS}`,
        '--tls-hosts=127.0.0.1',
      ],
      { env: { KUBECONFIG: kubeconfig, POD_NAME: 'webhook-0', KUBERNETES_SERVICE_HOST: undefined } },
    );
    try {
      await proc.waitForOutput('listening', 30_000);
      const ca = b64d(
        api.get('mutatingwebhookconfigurations', '', 'sidekey-webhook')?.webhooks[0].clientConfig.caBundle,
      );
      expect(ca).toContain('BEGIN CERTIFICATE');
      const res = await new Promise<{ status: number; authorized: boolean }>((resolve, reject) => {
        const req = httpsGet({ host: '127.0.0.1', port, path: '/readyz', ca }, (r) => {
          r.resume();
          resolve({ status: r.statusCode ?? 0, authorized: (r.socket as tls.TLSSocket).authorized });
        });
        req.on('error', reject);
      });
      expect(res).toEqual({ status: 200, authorized: true });
      expect(api.get('leases', NS, 'sidekey-tls-writer')?.spec.holderIdentity).toBe('webhook-0');
    } finally {
      const r = await proc.stop();
      expect(`${r.stdout}${r.stderr}`).not.toContain('PRIVATE KEY');
    }
  });

  it('`--tls-self-managed` without the webhook configuration name is a usage error naming the flag', async () => {
    const r = await runCli(
      [
        'webhook',
        `--tls-cert=${path.join(dir, 'x.crt')}`,
        `--tls-key=${path.join(dir, 'x.key')}`,
        '--tls-self-managed',
        `--service=${SVC}`,
        `--namespace=${NS}`,
      ],
      { timeoutMs: 30_000 },
    );
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('SK_ERR_CLI_USAGE: --webhook-config is required with --tls-self-managed');
  });

  it('`--tls-renew-at` that is not a fraction is a usage error quoting the value', async () => {
    const r = await runCli(
      [
        'webhook',
        `--tls-cert=${path.join(dir, 'x.crt')}`,
        `--tls-key=${path.join(dir, 'x.key')}`,
        '--tls-self-managed',
        '--webhook-config=sidekey-webhook',
        `--service=${SVC}`,
        `--namespace=${NS}`,
        '--tls-renew-at=soon',
      ],
      { timeoutMs: 30_000 },
    );
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      'SK_ERR_CLI_USAGE: --tls-renew-at: "soon" is not a fraction between 0 and 1',
    );
  });
});
