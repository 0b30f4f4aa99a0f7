import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { freePort, type Proc, startProc, toolPath, waitUntil } from './common.ts';

export interface OpenBao {
  /** http(s)://127.0.0.1:<port> */
  readonly addr: string;
  readonly rootToken: string;
  /** With `tls`: the PEM file of the CA that signed the server's certificate (SANs localhost, 127.0.0.1). */
  readonly caFile: string | undefined;
  /** Call the HTTP API as root (or with `token`); returns the parsed JSON body (or null for 204). */
  // biome-ignore lint/suspicious/noExplicitAny: test helper over arbitrary Vault API JSON
  api(method: string, apiPath: string, body?: unknown, token?: string): Promise<any>;
  stop(): Promise<void>;
  proc: Proc;
}

/**
 * Start a real OpenBao server in dev mode (in-memory, unsealed, KV v2 at secret/) on a random
 * loopback port; with `tls`, over HTTPS with a CA and certificate OpenBao generates (`-dev-tls`).
 * Dev mode is the OpenBao binary's own mode for tests; everything else (auth methods, policies,
 * engines) is configured by the tests over the HTTP API.
 */
export async function startOpenBao(opts: { devRootToken?: string; tls?: boolean } = {}): Promise<OpenBao> {
  const bao = toolPath('bao', 'scripts/tools/integration.d/10-openbao.sh');
  const port = await freePort();
  const rootToken = opts.devRootToken ?? 'root-dev-token';
  const home = mkdtempSync(path.join(os.tmpdir(), 'sidekey-bao-'));
  const certDir = path.join(home, 'tls');
  if (opts.tls) mkdirSync(certDir);
  const proc = startProc(
    bao,
    [
      'server',
      '-dev',
      `-dev-root-token-id=${rootToken}`,
      `-dev-listen-address=127.0.0.1:${port}`,
      '-dev-no-store-token',
      ...(opts.tls ? ['-dev-tls', `-dev-tls-cert-dir=${certDir}`] : []),
    ],
    // A private HOME: dev mode must not touch the user's token helper file.
    { env: { PATH: process.env.PATH ?? '', HOME: home, BAO_LOG_LEVEL: 'warn' }, cwd: home },
  );
  const addr = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const caFile = opts.tls ? path.join(certDir, 'vault-ca.pem') : undefined;
  let ca: string | undefined;
  const request = (
    method: string,
    apiPath: string,
    body: string | undefined,
    headers: Record<string, string>,
  ) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const url = new URL(`${addr}/v1/${apiPath}`);
      const req = (opts.tls ? https : http).request(
        url,
        { method, headers, ...(ca ? { ca } : {}) },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const api = async (method: string, apiPath: string, body?: unknown, token = rootToken) => {
    const { status, text } = await request(
      method,
      apiPath,
      body === undefined ? undefined : JSON.stringify(body),
      {
        'X-Vault-Token': token,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
    );
    if (status < 200 || status >= 300) throw new Error(`openbao ${method} ${apiPath}: ${status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  await waitUntil(
    'openbao',
    async () => {
      if (caFile && !ca) ca = readFileSync(caFile, 'utf8');
      return (await request('GET', 'sys/health', undefined, {})).status === 200;
    },
    proc,
    60_000,
  );
  return {
    addr,
    rootToken,
    caFile,
    api,
    proc,
    async stop() {
      await proc.stop();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
