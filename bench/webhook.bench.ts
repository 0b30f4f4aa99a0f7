import 'reflect-metadata';
import { type ChildProcess, spawn } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { parseWebhookConfig } from '../webhook/config.ts';
import { createPipelineContext } from '../webhook/context.ts';
import type { Pod } from '../webhook/k8s.ts';
import { mutatePod } from '../webhook/pipeline.ts';
import { BIN, exited, median, percentile, REPO_ROOT, type Row, sleep } from './lib.ts';

/**
 * The admission webhook: the real `sidekey webhook` process over TLS (loopback), pinned to one CPU
 * with taskset where available, while this process generates the load.
 * - throughput: closed loop, one request in flight on each of 16 keep-alive connections, for 8 s;
 * - latency at a fixed 500 req/s (open loop, measured from each request's scheduled send time, so a
 *   stall is not hidden by the generator waiting for it), 10 s;
 * - the pipeline alone, in process (µs per pod).
 * The pod is a realistic 5-container pod with 4 secrets, env-var replacement, existing volumes.
 */

const SECTION = 'webhook (5-container pod, TLS)';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

async function selfSigned(): Promise<{ cert: string; key: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=localhost',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])],
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    cert: cert.toString('pem'),
    key: `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`,
  };
}

/** A pod as a Deployment controller would create it: 5 containers, probes, env, volumes, 4 secrets. */
export function realisticPod(i = 0): Pod {
  // Plain JSON as it arrives from the API server; the Pod type is checked where the pipeline reads it.
  const container = (name: string, image: string, extraEnv: Array<Record<string, unknown>> = []) => ({
    name,
    image,
    ports: [{ containerPort: 8080, name: 'http', protocol: 'TCP' }],
    env: [
      { name: 'LOG_LEVEL', value: 'info' },
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      ...extraEnv,
    ],
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
    readinessProbe: { httpGet: { path: '/ready', port: 8080 }, periodSeconds: 5 },
    volumeMounts: [{ name: 'config', mountPath: '/etc/app', readOnly: true }],
    securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
  });
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'shop-api-7d9f8c6b5-',
      namespace: 'shop',
      labels: { app: 'shop-api', 'pod-template-hash': '7d9f8c6b5' },
      annotations: {
        'sidekey.io/inject': 'true',
        'sidekey.io/containers': 'api,worker,cron',
        'sidekey.io/secret-db': 'vault:database/creds/shop-api',
        'sidekey.io/format-db': 'json',
        'sidekey.io/env-db': 'DB_CREDENTIALS',
        'sidekey.io/secret-stripe': 'vault:secret/data/shop/stripe#api_key',
        'sidekey.io/env-stripe': 'STRIPE_KEY',
        'sidekey.io/secret-tls': 'vault:pki/issue/shop-api',
        'sidekey.io/template-tls': '{{ value.certificate }}\n{{ value.private_key }}\n',
        'sidekey.io/file-tls': 'tls/bundle.pem',
        'sidekey.io/secret-session': 'k8s:shop-session#key',
        'sidekey.io/vault-role': 'shop-api',
        'sidekey.io/on-change': 'signal:HUP',
        'prometheus.io/scrape': 'true',
        'kubectl.kubernetes.io/restartedAt': `2026-01-01T00:00:${String(i % 60).padStart(2, '0')}Z`,
      },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'shop-api-7d9f8c6b5',
          uid: 'a-b-c',
          controller: true,
        },
      ],
    },
    spec: {
      serviceAccountName: 'shop-api',
      securityContext: { runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, runAsNonRoot: true },
      volumes: [
        { name: 'config', configMap: { name: 'shop-api' } },
        {
          name: 'kube-api-access-x1',
          projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }] },
        },
      ],
      containers: [
        container('api', 'shop/api:2.3.1', [
          { name: 'DB_CREDENTIALS', valueFrom: { secretKeyRef: { name: 'shop-db', key: 'json' } } },
          { name: 'STRIPE_KEY', valueFrom: { secretKeyRef: { name: 'shop-stripe', key: 'key' } } },
        ]),
        container('worker', 'shop/worker:2.3.1', [
          { name: 'DB_CREDENTIALS', valueFrom: { secretKeyRef: { name: 'shop-db', key: 'json' } } },
        ]),
        container('cron', 'shop/cron:2.3.1'),
        container('envoy', 'envoyproxy/envoy:v1.31'),
        container('log-shipper', 'fluent/fluent-bit:3.1'),
      ],
    },
  };
  return pod as unknown as Pod;
}

const review = (i: number) =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `bench-${i}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        groups: ['system:serviceaccounts'],
      },
      object: realisticPod(i),
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  });

/** Cumulative counts of the server's request histogram (inject outcome): ≤ 5 ms, and all. */
function handlerBuckets(port: number, ca: string): Promise<{ le5: number; all: number }> {
  return new Promise((resolve, reject) => {
    https
      .get(
        { host: '127.0.0.1', port, path: '/metrics', ca, servername: 'localhost', agent: false },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => {
            const count = (le: string) =>
              Number(
                new RegExp(
                  `^sidekey_webhook_request_duration_seconds_bucket\\{le="${le}",outcome="inject"\\} (\\d+)$`,
                  'm',
                ).exec(text)?.[1] ?? 0,
              );
            resolve({ le5: count('0.005'), all: count('\\+Inf') });
          });
        },
      )
      .on('error', reject);
  });
}

/** CPU time (user + system) of a process in seconds, from /proc. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

export async function run(): Promise<Row[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-bench-webhook-'));
  const { cert, key } = await selfSigned();
  writeFileSync(path.join(dir, 'tls.crt'), cert);
  writeFileSync(path.join(dir, 'tls.key'), key);
  writeFileSync(
    path.join(dir, 'config.yaml'),
    'agent:\n  image: ghcr.io/sidekey/sidekey:bench\nnativeSidecars: true\n',
  );
  const pin = existsSync('/usr/bin/taskset') && os.availableParallelism() > 1;
  // SIDEKEY_BENCH_PROFILE=<dir>: write a CPU profile of the server (node --cpu-prof) there.
  const prof = process.env.SIDEKEY_BENCH_PROFILE;
  const args = [
    ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []),
    BIN,
    'webhook',
    '--config',
    path.join(dir, 'config.yaml'),
    '--port',
    '0',
    '--host',
    '127.0.0.1',
  ];
  args.push('--tls-cert', path.join(dir, 'tls.crt'), '--tls-key', path.join(dir, 'tls.key'));
  const child: ChildProcess = pin
    ? spawn('taskset', ['-c', '1', process.execPath, ...args], {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, SIDEKEY_LOG_LEVEL: 'info' },
      })
    : spawn(process.execPath, args, {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, SIDEKEY_LOG_LEVEL: 'info' },
      });
  try {
    const port = await listeningPort(child);
    const bodies = Array.from({ length: 64 }, (_, i) => rawRequest(review(i)));
    const conns = await Promise.all(Array.from({ length: 16 }, () => Conn.open(port, cert)));
    // Warm-up: JIT, caches.
    await closedLoop(conns, bodies, 2000);
    const cpu0 = cpuSeconds(child.pid!);
    const t = await closedLoop(conns, bodies, 8000);
    const cpu = cpuSeconds(child.pid!) - cpu0;
    const before = await handlerBuckets(port, cert);
    const lat = await fixedRate(conns, bodies, 500, 10_000);
    const after = await handlerBuckets(port, cert);
    const within5 = (after.le5 - before.le5) / Math.max(1, after.all - before.all);
    for (const c of conns) c.close();
    const pipeline = inProcess();
    // The machine may be shared; the load average says how much the figures are worth.
    const load = `load avg ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} CPUs`;
    return [
      {
        section: SECTION,
        metric: `throughput, closed loop (16 keep-alive connections)${pin ? ', server pinned to 1 CPU' : ''}`,
        value: t.rps,
        unit: 'req/s',
        note: `${load}; ${t.count} requests, ${t.errors} errors; server CPU ${((cpu / t.seconds) * 100).toFixed(0)} % of one core; p50 ${t.p50.toFixed(2)} ms`,
      },
      {
        section: SECTION,
        metric: 'server CPU time per admission (user+sys)',
        value: (cpu / t.count) * 1e6,
        unit: 'µs',
        note: `one core's capacity at this cost: ${Math.round(t.count / cpu)} req/s (what a shared machine hides in the figure above)`,
      },
      {
        section: SECTION,
        metric: 'latency p50 at 500 req/s',
        value: lat.p50,
        unit: 'ms',
        note: `${lat.count} requests, ${lat.errors} errors`,
      },
      {
        section: SECTION,
        metric: 'latency p99 at 500 req/s',
        value: lat.p99,
        unit: 'ms',
        max: 5,
        note: `max ${lat.max.toFixed(2)} ms`,
      },
      {
        section: SECTION,
        metric: 'at 500 req/s, share of admissions the handler answered within 5 ms',
        value: within5 * 100,
        unit: '%',
        note: "the server's own request histogram: what is left of p99 above is TLS, sockets and scheduling",
      },
      {
        section: SECTION,
        metric: 'pipeline alone (in process), median per pod',
        value: pipeline,
        unit: 'µs',
      },
    ];
  } finally {
    child.kill('SIGTERM');
    await exited(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

function listeningPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let err = '';
    let port: number | undefined;
    const timer = setTimeout(() => reject(new Error(`webhook did not start: ${err}`)), 20_000);
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      // Once listening, the server's log lines (one per admission) are only drained: keeping or
      // scanning them would cost this process CPU, and an undrained pipe would block the server.
      if (port !== undefined) return;
      err += s;
      const line = err.split('\n').find((l) => l.includes('sidekey webhook listening'));
      if (line) {
        clearTimeout(timer);
        port = (JSON.parse(line) as { port: number }).port;
        err = '';
        resolve(port);
      }
    });
    child.once('exit', () => reject(new Error(`webhook exited: ${err}`)));
  });
}

/**
 * A lean keep-alive HTTP/1.1 client over one TLS socket: requests are pre-serialised and responses
 * parsed only as far as Content-Length, so the generator costs far less CPU than the server under
 * test (node's https client costs about as much as the server, and would measure itself).
 */
class Conn {
  private buf: Buffer = Buffer.alloc(0);
  private waiting: ((ok: boolean) => void) | undefined;
  private constructor(private readonly socket: tls.TLSSocket) {
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.parse();
    });
    socket.on('error', () => this.finish(false));
    socket.on('close', () => this.finish(false));
  }

  static open(port: number, ca: string): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () =>
        resolve(new Conn(s)),
      );
      s.once('error', reject);
    });
  }

  request(raw: Buffer): Promise<boolean> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.socket.write(raw);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private parse(): void {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buf.subarray(0, end).toString('latin1');
    const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.buf.length < end + 4 + len) return;
    const ok = head.startsWith('HTTP/1.1 200') && len > 100;
    this.buf = this.buf.subarray(end + 4 + len);
    this.finish(ok);
  }

  private finish(ok: boolean): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.(ok);
  }
}

function rawRequest(body: string): Buffer {
  return Buffer.from(
    `POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

async function closedLoop(conns: Conn[], bodies: Buffer[], ms: number) {
  const end = performance.now() + ms;
  const lat: number[] = [];
  let errors = 0;
  let i = 0;
  const t0 = performance.now();
  const worker = async (c: Conn) => {
    while (performance.now() < end) {
      const s = performance.now();
      const ok = await c.request(bodies[i++ % bodies.length]!);
      lat.push(performance.now() - s);
      if (!ok) errors++;
    }
  };
  await Promise.all(conns.map(worker));
  const seconds = (performance.now() - t0) / 1000;
  return { rps: lat.length / seconds, count: lat.length, errors, seconds, p50: median(lat) };
}

/**
 * Open loop at `rate` req/s: request i is issued at t0 + i/rate whatever the answers so far, and its
 * latency counts from then, including a wait for a free connection when all are busy (it queues, as
 * it would at the API server).
 */
async function fixedRate(conns: Conn[], bodies: Buffer[], rate: number, ms: number) {
  const n = Math.floor((rate * ms) / 1000);
  const gap = 1000 / rate;
  const lat: number[] = [];
  let errors = 0;
  const idle = [...conns];
  const queue: Array<{ at: number; i: number }> = [];
  const pump = () => {
    while (idle.length > 0 && queue.length > 0) {
      const c = idle.pop()!;
      const { at, i } = queue.shift()!;
      void c.request(bodies[i % bodies.length]!).then((ok) => {
        lat.push(performance.now() - at);
        if (!ok) errors++;
        idle.push(c);
        pump();
      });
    }
  };
  const t0 = performance.now() + 50;
  for (let i = 0; i < n; i++) {
    const due = t0 + i * gap;
    const wait = due - performance.now();
    if (wait > 0.5) await sleep(wait);
    // Latency counts from when the request is issued (a late timer of this generator is not the
    // server's), and includes any wait for a free connection (the server being slow is).
    queue.push({ at: performance.now(), i });
    pump();
  }
  while (lat.length < n) await sleep(5);
  return {
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    max: Math.max(...lat),
    count: lat.length,
    errors,
  };
}

function inProcess(): number {
  const ctx = createPipelineContext(parseWebhookConfig({ nativeSidecars: true }), { nativeSidecars: true });
  const pods = Array.from({ length: 64 }, (_, i) => realisticPod(i));
  const per: number[] = [];
  for (let round = 0; round < 7; round++) {
    const t = performance.now();
    for (let i = 0; i < 2000; i++) {
      const o = mutatePod({ operation: 'CREATE', namespace: 'shop', pod: pods[i % pods.length]! }, ctx);
      if (o.kind !== 'inject')
        throw new Error(`bench pod not injected: ${o.kind === 'invalid' ? o.error.message : o.reason}`);
    }
    per.push(((performance.now() - t) * 1000) / 2000);
  }
  return median(per.slice(2));
}
