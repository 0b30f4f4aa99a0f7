import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import jsonpatch from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, runCli, spawnCli, waitFor } from '../helpers/cli.ts';

/**
 * The webhook over real HTTPS: the built CLI (`sidekey webhook`) as a process, AdmissionReviews over
 * TLS verified against a test CA, TLS ≥ 1.2 only, and a certificate rotated while serving, laid out
 * the way the kubelet lays out a Secret volume (`..data` symlink swap): new connections get the new
 * certificate, an open keep-alive connection and a request in flight during the swap do not fail.
 *
 * Certificates are issued here with @peculiar/x509 (already the TLS manager's dependency, and it
 * issues real CA-signed certificates with SANs, which `selfsigned` does not do as directly).
 */
x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

interface Issued {
  cert: string;
  key: string;
  serial: string;
  /** Expiry in Unix seconds. */
  notAfter: number;
}

async function pkcs8(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
}

async function issueCa(): Promise<{ cert: x509.X509Certificate; key: CryptoKey; pem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=sidekey webhook test CA',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  return { cert, key: keys.privateKey, pem: cert.toString('pem') };
}

async function issueServing(
  ca: { cert: x509.X509Certificate; key: CryptoKey },
  serial: string,
  validDays = 1,
): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: `CN=sidekey-webhook-${serial}`,
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + validDays * 86_400_000),
    signingKey: ca.key,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
      ]),
    ],
  });
  return {
    cert: cert.toString('pem'),
    key: await pkcs8(keys.privateKey),
    serial,
    notAfter: Math.floor(cert.notAfter.getTime() / 1000),
  };
}

/** Write a pair the way the kubelet updates a Secret volume: a fresh dir, then swap `..data`. */
function publish(dir: string, pair: Issued, generation: number): void {
  const gen = `..gen_${generation}`;
  mkdirSync(path.join(dir, gen));
  writeFileSync(path.join(dir, gen, 'tls.crt'), pair.cert);
  writeFileSync(path.join(dir, gen, 'tls.key'), pair.key);
  symlinkSync(gen, path.join(dir, '..data_tmp'));
  renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  if (generation === 1) {
    symlinkSync('..data/tls.crt', path.join(dir, 'tls.crt'));
    symlinkSync('..data/tls.key', path.join(dir, 'tls.key'));
  }
}

const review = (uid: string) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: 'shop',
    operation: 'CREATE',
    object: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: 'web-',
        annotations: {
          'sidekey.io/inject': 'true',
          'sidekey.io/secret-db': 'vault:secret/data/shop/db#password',
        },
      },
      spec: { containers: [{ name: 'app', image: 'app:1' }] },
    },
  },
});

interface Answer {
  status: number;
  body: string;
  serial: string;
  reused: boolean;
  protocol: string | null;
}

let dir: string;
let ca: Awaited<ReturnType<typeof issueCa>>;
let first: Issued;
let proc: CliProcess;
let port: number;

function post(body: string, opts: { agent?: https.Agent; pathName?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: opts.pathName ?? '/mutate',
        method: 'POST',
        ca: ca.pem,
        servername: 'localhost',
        agent: opts.agent ?? false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        // Read the handshake now: a non-keep-alive socket is detached from the response at its end.
        const socket = res.socket as TLSSocket;
        const serial = socket.getPeerCertificate().serialNumber ?? '';
        const protocol = socket.getProtocol();
        let data = '';
        res.setEncoding('utf8').on('data', (c: string) => {
          data += c;
        });
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: data, serial, reused: req.reusedSocket, protocol });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function get(pathName: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(
        { host: '127.0.0.1', port, path: pathName, ca: ca.pem, servername: 'localhost', agent: false },
        (res) => {
          let data = '';
          res.setEncoding('utf8').on('data', (c: string) => {
            data += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
        },
      )
      .on('error', reject);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sk-webhook-tls-'));
  ca = await issueCa();
  first = await issueServing(ca, '0a01');
  mkdirSync(path.join(dir, 'tls'));
  publish(path.join(dir, 'tls'), first, 1);
  writeFileSync(
    path.join(dir, 'config.yaml'),
    'apiVersion: sidekey.io/v1\nkind: WebhookConfig\nagent:\n  image: ghcr.io/sidekey/sidekey:test\nnativeSidecars: true\n',
  );
  proc = spawnCli(
    [
      'webhook',
      '--config',
      path.join(dir, 'config.yaml'),
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--tls-cert',
      path.join(dir, 'tls', 'tls.crt'),
      '--tls-key',
      path.join(dir, 'tls', 'tls.key'),
    ],
    { timeoutMs: 120_000, env: { SIDEKEY_LOG_LEVEL: 'info' } },
  );
  await proc.waitForOutput('sidekey webhook listening', 20_000);
  const line = proc
    .stderr()
    .split('\n')
    .find((l) => l.includes('sidekey webhook listening'))!;
  port = (JSON.parse(line) as { port: number }).port;
}, 60_000);

afterAll(async () => {
  if (proc) await proc.stop('SIGTERM', 10_000);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('sidekey webhook over HTTPS', () => {
  it('answers an AdmissionReview over verified TLS with a patch that applies', async () => {
    const r = await post(JSON.stringify(review('uid-1')));
    expect(r.status).toBe(200);
    expect(r.serial.toLowerCase()).toBe('0a01');
    expect(['TLSv1.2', 'TLSv1.3']).toContain(r.protocol);
    const out = JSON.parse(r.body);
    expect(out.response.uid).toBe('uid-1');
    expect(out.response.allowed).toBe(true);
    const patch = JSON.parse(Buffer.from(out.response.patch, 'base64').toString('utf8'));
    const pod = jsonpatch.applyPatch(review('x').request.object, patch, true, false)
      .newDocument as unknown as {
      spec: { initContainers: Array<{ name: string; restartPolicy?: string }> };
    };
    expect(pod.spec.initContainers[0]).toMatchObject({ name: 'sidekey-agent', restartPolicy: 'Always' });
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
    const metrics = await get('/metrics');
    expect(metrics.body).toMatch(/^sidekey_webhook_injections_total\{namespace="shop",mode="native"\} 1$/m);
  });

  it('refuses TLS below 1.2', async () => {
    const attempt = new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          path: '/healthz',
          ca: ca.pem,
          servername: 'localhost',
          agent: false,
          maxVersion: 'TLSv1.1',
          minVersion: 'TLSv1',
        },
        resolve,
      );
      req.on('error', reject);
      req.end();
    });
    await expect(attempt).rejects.toThrow(/protocol|version|handshake|SSL/i);
  });

  it('rotates the certificate while serving: new connections get the new one, open ones keep working', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const before = await post(JSON.stringify(review('keepalive-1')), { agent });
    expect(before.serial.toLowerCase()).toBe('0a01');

    // A request in flight across the rotation: headers and half the body now, the rest after.
    const body = JSON.stringify(review('in-flight'));
    const inFlight = new Promise<{ status: number; body: string; serial: string }>((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          path: '/mutate',
          method: 'POST',
          ca: ca.pem,
          servername: 'localhost',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber ?? '';
          let data = '';
          res.setEncoding('utf8').on('data', (c: string) => {
            data += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data, serial }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 100));
      (globalThis as { finishInFlight?: () => void }).finishInFlight = () => req.end(body.slice(100));
    });

    const second = await issueServing(ca, '0b02', 2);
    publish(path.join(dir, 'tls'), second, 2);
    // New connections see the new certificate once the file watch has reloaded it.
    await waitFor(
      async () => (await post(JSON.stringify(review('probe')))).serial.toLowerCase() === '0b02',
      15_000,
      100,
    );
    await proc.waitForOutput('TLS certificate reloaded', 5000);

    (globalThis as { finishInFlight?: () => void }).finishInFlight!();
    const done = await inFlight;
    expect(done.status).toBe(200);
    expect(done.serial.toLowerCase()).toBe('0a01');
    expect(JSON.parse(done.body).response.uid).toBe('in-flight');

    // The keep-alive connection opened before the rotation still works, on its original handshake.
    const after = await post(JSON.stringify(review('keepalive-2')), { agent });
    expect(after.status).toBe(200);
    expect(after.reused).toBe(true);
    expect(after.serial.toLowerCase()).toBe('0a01');
    expect(JSON.parse(after.body).response.uid).toBe('keepalive-2');
    agent.destroy();

    const metrics = (await get('/metrics')).body;
    expect(metrics).toMatch(/^sidekey_webhook_tls_reloads_total\{result="ok"\} 1$/m);
    expect(metrics).toContain(`sidekey_webhook_tls_certificate_not_after_seconds ${second.notAfter}\n`);
  }, 60_000);

  it('keeps serving the last good certificate when the new files do not form a pair', async () => {
    const third = await issueServing(ca, '0c03');
    const mismatched = { ...third, key: first.key };
    publish(path.join(dir, 'tls'), mismatched, 3);
    await proc.waitForOutput('SK_ERR_TLS', 10_000);
    const r = await post(JSON.stringify(review('still-serving')));
    expect(r.status).toBe(200);
    expect(r.serial.toLowerCase()).toBe('0b02');
    expect((await get('/metrics')).body).toMatch(
      /^sidekey_webhook_tls_reloads_total\{result="error"\} [1-9]/m,
    );
  }, 30_000);

  it('shuts down gracefully on SIGTERM, finishing a request in flight', async () => {
    const body = JSON.stringify(review('during-shutdown'));
    let finish: () => void = () => {};
    const inFlight = new Promise<{ status: number; uid: string }>((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          path: '/mutate',
          method: 'POST',
          ca: ca.pem,
          servername: 'localhost',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let data = '';
          res.setEncoding('utf8').on('data', (c: string) => {
            data += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, uid: JSON.parse(data).response?.uid }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 50));
      finish = () => req.end(body.slice(50));
    });
    await new Promise((r) => setTimeout(r, 200));
    const exited = proc.stop('SIGTERM', 15_000);
    await proc.waitForOutput('shutting down', 5000);
    finish();
    expect(await inFlight).toEqual({ status: 200, uid: 'during-shutdown' });
    const res = await exited;
    expect(res.code).toBe(0);
  }, 30_000);
});

describe('sidekey webhook refuses to start', () => {
  it('without readable TLS files (exit 1, SK_ERR_TLS naming the file)', async () => {
    const r = await runCli([
      'webhook',
      '--port',
      '0',
      '--tls-cert',
      '/nonexistent/tls.crt',
      '--tls-key',
      '/nonexistent/tls.key',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^SK_ERR_TLS: --tls-cert \/nonexistent\/tls\.crt: cannot read \(ENOENT\)$/m);
  });

  it('on a port already taken: exits (does not hang on the TLS file watch), SK_ERR naming --port', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const busy = (taken.address() as net.AddressInfo).port;
    // A good pair of its own: the rotation tests above leave a mismatched one in dir/tls.
    const tls = path.join(dir, 'busy');
    mkdirSync(tls);
    writeFileSync(path.join(tls, 'tls.crt'), first.cert);
    writeFileSync(path.join(tls, 'tls.key'), first.key);
    try {
      const r = await runCli(
        [
          'webhook',
          '--host',
          '127.0.0.1',
          '--port',
          String(busy),
          '--tls-cert',
          path.join(tls, 'tls.crt'),
          '--tls-key',
          path.join(tls, 'tls.key'),
        ],
        { timeoutMs: 20_000 },
      );
      expect(r.stderr).toMatch(
        new RegExp(
          `^SK_ERR_CLI_USAGE: --host 127\\.0\\.0\\.1 --port ${busy}: cannot listen \\(EADDRINUSE\\)$`,
          'm',
        ),
      );
      expect(r.code).toBe(2);
    } finally {
      taken.close();
    }
  });

  it('with a bad config file (exit 2, SK_ERR_WEBHOOK_CONFIG naming the field)', async () => {
    const bad = path.join(mkdtempSync(path.join(tmpdir(), 'sk-webhook-cfg-')), 'config.yaml');
    writeFileSync(bad, 'agent:\n  mode: sometimes\n');
    const r = await runCli(['webhook', '--config', bad, '--tls-cert', 'x', '--tls-key', 'y']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^SK_ERR_WEBHOOK_CONFIG: .*config\.yaml: agent\.mode: /m);
    rmSync(path.dirname(bad), { recursive: true, force: true });
  });
});
