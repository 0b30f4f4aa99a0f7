import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Where scripts/tools/ensure.sh puts the real servers the integration tier needs. */
export const TOOLS_DIR = process.env.SIDEKEY_TOOLS ?? path.join(os.homedir(), '.cache', 'sidekey-tools');

/** Path of a tool in $SIDEKEY_TOOLS/bin; throws (the test fails) when it is missing: tests never skip. */
export function toolPath(name: string, installer: string): string {
  const p = path.join(TOOLS_DIR, 'bin', name);
  if (!existsSync(p)) {
    throw new Error(
      `${name} not found at ${p}: run \`bash scripts/tools/ensure.sh integration\` (installer: ${installer})`,
    );
  }
  return p;
}

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released for the server to take). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A child process whose output is kept (bounded) for error messages. */
export interface Proc {
  readonly child: ChildProcess;
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it exited. */
  stop(graceMs?: number): Promise<void>;
}

export function startProc(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Proc {
  const child = spawn(cmd, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    child.once('exit', () => resolve());
  });
  return {
    child,
    output: () => out,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Poll `probe` until it returns true; fail with the process output when it exits or time runs out. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  proc: Proc | undefined,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && (proc.child.exitCode !== null || proc.child.signalCode !== null)) {
      throw new Error(`${what} exited (${proc.child.exitCode ?? proc.child.signalCode}):\n${proc.output()}`);
    }
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms:\n${proc?.output() ?? ''}`);
}
