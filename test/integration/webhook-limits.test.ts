import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_NODE_OPTION } from '../../sidecar/v8-flags.ts';
import { LIMITS } from '../../webhook/limits.ts';
import { BODY_LIMIT } from '../../webhook/server.ts';
import { type CliProcess, spawnCli } from '../helpers/cli.ts';
import { admissionReview, LARGEST, largePod } from '../helpers/large-pod.ts';

/**
 * The webhook's memory bound, measured on the real server process (`sidekey webhook`, the built CLI)
 * the way the API server would load it: the largest accepted pod, padded to a review just under the
 * body limit (4 MiB), 16 of them at once with the default maxConcurrentReviews, run with the chart's
 * NODE_OPTIONS and the image's Node option. The peak resident memory of the process (VmHWM) must stay under the chart's limit
 * (192Mi).
 * docs/webhook.md ("Limits") states the figure this prints.
 */
x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const CHART_LIMIT = 192 * 1024 * 1024;
/** The default of maxConcurrentReviews (webhook/config.ts, the chart's value). */
const CONCURRENCY = 2;
/** The largest accepted pod, its containers padded so the review is just under the body limit. */
const WORST = { ...LARGEST, envPerContainer: 280 };
/**
 * The webhook runs as in the chart: its NODE_OPTIONS (the V8 heap cap), and the option the image
 * starts every sidekey process with (a 1 MiB young generation).
 */
const CHART_NODE_OPTIONS = /name: NODE_OPTIONS\s+value: "([^"]+)"/.exec(
  readFileSync(new URL('../../charts/sidekey/templates/deployment.yaml', import.meta.url), 'utf8'),
)![1]!;

let dir: string;
let proc: CliProcess;
let port: number;
let ca: string;

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
  const key = `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
  return { cert: cert.toString('pem'), key };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sidekey-webhook-limits-'));
  const pair = await selfSigned();
  ca = pair.cert;
  writeFileSync(path.join(dir, 'tls.crt'), pair.cert);
  writeFileSync(path.join(dir, 'tls.key'), pair.key);
  // Classic init + sidecar: the spec is carried twice, the larger patch.
  writeFileSync(
    path.join(dir, 'config.yaml'),
    `nativeSidecars: false\nmaxConcurrentReviews: ${CONCURRENCY}\nlogLevel: warn\n`,
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
      path.join(dir, 'tls.crt'),
      '--tls-key',
      path.join(dir, 'tls.key'),
    ],
    {
      env: { SIDEKEY_LOG_LEVEL: 'info', NODE_OPTIONS: `${CHART_NODE_OPTIONS} ${IMAGE_NODE_OPTION}` },
      timeoutMs: 120_000,
    },
  );
  await proc.waitForOutput(/"port":\d+/, 20_000);
  port = Number(/"port":(\d+)/.exec(proc.stderr())![1]);
}, 30_000);

afterAll(async () => {
  await proc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function post(body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        ca,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const peakRss = () =>
  Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))![1]) * 1024;

describe('webhook memory at its limits (real server)', () => {
  it(`16 largest accepted pods at once: all injected, peak RSS under 192Mi`, async () => {
    const before = peakRss();
    const bodies = Array.from({ length: 16 }, (_, i) =>
      JSON.stringify(
        admissionReview(largePod(WORST), `b6f5a0f2-0000-4000-8000-${String(i).padStart(12, '0')}`),
      ),
    );
    expect(bodies[0]!.length).toBeGreaterThan(0.9 * BODY_LIMIT);
    expect(bodies[0]!.length).toBeLessThan(BODY_LIMIT);
    const answers = await Promise.all(bodies.map(post));
    const peak = peakRss();
    let patchBytes = 0;
    for (const a of answers) {
      expect(a.status).toBe(200);
      const r = JSON.parse(a.body).response;
      expect(r.allowed).toBe(true);
      patchBytes = Buffer.from(r.patch, 'base64').length;
      expect(patchBytes).toBeLessThanOrEqual(LIMITS.patchBytes);
    }
    console.log(
      `webhook peak RSS: ${(before / 2 ** 20).toFixed(1)} MiB idle, ${(peak / 2 ** 20).toFixed(1)} MiB after ${bodies.length} requests of ${(bodies[0]!.length / 2 ** 20).toFixed(2)} MiB (patch ${(patchBytes / 2 ** 10).toFixed(0)} KiB) with maxConcurrentReviews ${CONCURRENCY}`,
    );
    expect(peak).toBeLessThan(CHART_LIMIT);
  }, 90_000);

  it('the next size up is denied with SK_ERR_POD_TOO_LARGE', async () => {
    const a = await post(
      JSON.stringify(admissionReview(largePod({ ...LARGEST, secrets: LARGEST.secrets + 1 }))),
    );
    expect(a.status).toBe(200);
    const r = JSON.parse(a.body).response;
    expect(r.allowed).toBe(false);
    expect(r.status.message).toMatch(/^sidekey: SK_ERR_POD_TOO_LARGE: sidekey.io\/secret-\*: 257 secrets/);
  });
});
