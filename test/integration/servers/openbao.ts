import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, type Proc, startProc, toolPath, waitUntil } from './common.ts';

export interface OpenBao {
  /** http://127.0.0.1:<port> */
  readonly addr: string;
  readonly rootToken: string;
  /** Call the HTTP API as root (or with `token`); returns the parsed JSON body (or null for 204). */
  // biome-ignore lint/suspicious/noExplicitAny: test helper over arbitrary Vault API JSON
  api(method: string, apiPath: string, body?: unknown, token?: string): Promise<any>;
  stop(): Promise<void>;
  proc: Proc;
}

/**
 * Start a real OpenBao server in dev mode (in-memory, unsealed, KV v2 at secret/) on a random
 * loopback port. Dev mode is the OpenBao binary's own mode for tests; everything else (auth methods,
 * policies, engines) is configured by the tests over the HTTP API.
 */
export async function startOpenBao(opts: { devRootToken?: string } = {}): Promise<OpenBao> {
  const bao = toolPath('bao', 'scripts/tools/integration.d/10-openbao.sh');
  const port = await freePort();
  const rootToken = opts.devRootToken ?? 'root-dev-token';
  const home = mkdtempSync(path.join(os.tmpdir(), 'sidekey-bao-'));
  const proc = startProc(
    bao,
    [
      'server',
      '-dev',
      `-dev-root-token-id=${rootToken}`,
      `-dev-listen-address=127.0.0.1:${port}`,
      '-dev-no-store-token',
    ],
    // A private HOME: dev mode must not touch the user's token helper file.
    { env: { PATH: process.env.PATH ?? '', HOME: home, BAO_LOG_LEVEL: 'warn' }, cwd: home },
  );
  const addr = `http://127.0.0.1:${port}`;
  const api = async (method: string, apiPath: string, body?: unknown, token = rootToken) => {
    const res = await fetch(`${addr}/v1/${apiPath}`, {
      method,
      headers: {
        'X-Vault-Token': token,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`openbao ${method} ${apiPath}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  await waitUntil('openbao', async () => (await fetch(`${addr}/v1/sys/health`)).status === 200, proc, 60_000);
  return {
    addr,
    rootToken,
    api,
    proc,
    async stop() {
      await proc.stop();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
