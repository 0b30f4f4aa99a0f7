import { freePort, type Proc, startProc, toolPath, waitUntil } from './common.ts';

export interface Moto {
  /** http://127.0.0.1:<port>: pass as the AWS endpoint. */
  readonly endpoint: string;
  /** Requests moto saw, by X-Amz-Target (e.g. `secretsmanager.BatchGetSecretValue`), from its own log. */
  requestLog(): string;
  /** Forget every resource (moto's reset API), between tests. */
  reset(): Promise<void>;
  stop(): Promise<void>;
  proc: Proc;
}

/** Start a real moto_server (the local AWS API server from PyPI) on a random loopback port. */
export async function startMoto(): Promise<Moto> {
  const bin = toolPath('moto_server', 'scripts/tools/integration.d/30-moto.sh');
  const port = await freePort();
  const proc = startProc(bin, ['-H', '127.0.0.1', '-p', String(port)], {
    env: { ...process.env, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' },
  });
  const endpoint = `http://127.0.0.1:${port}`;
  await waitUntil('moto_server', async () => (await fetch(`${endpoint}/moto-api/`)).ok, proc, 60_000);
  return {
    endpoint,
    proc,
    requestLog: () => proc.output(),
    async reset() {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
      if (!res.ok) throw new Error(`moto reset: ${res.status}`);
    },
    stop: () => proc.stop(),
  };
}
