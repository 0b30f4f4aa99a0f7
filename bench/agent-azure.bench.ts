import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startAzureEmulator } from '../test/integration/servers/azure-emulator.ts';
import {
  BIN,
  benchRoot,
  exited,
  median,
  minMax,
  pollUntil,
  type Row,
  ready,
  sampleMemory,
  spawnToReady,
  steadyRssRow,
} from './lib.ts';

/**
 * The agent with 50 `azure:` secrets, read from the Key Vault / Entra emulator (test tree) on
 * loopback over HTTPS, configured as AKS Workload Identity configures a pod: resident memory of the
 * real `node bin/sidekey.js agent` process at steady state and time from spawn to a complete file set
 * (one challenge, one token exchange, 50 reads at most 8 at a time). Next to the `file:` figures of
 * agent.bench.ts, this is what the azure provider adds.
 */

const N = 50;
const RUNS = 7;
const SECTION = `agent (${N} secrets, azure: Key Vault emulator)`;

export async function run(): Promise<Row[]> {
  const emu = await startAzureEmulator();
  const dir = mkdtempSync(path.join(benchRoot(), 'sidekey-bench-azure-'));
  try {
    writeFileSync(path.join(dir, 'ca.pem'), emu.ca);
    writeFileSync(path.join(dir, 'token'), 'bench-projected-token');
    emu.trustAssertion('bench-projected-token');
    let spec = 'apiVersion: sidekey.io/v1\nkind: SecretSpec\noutput:\n  dir: out\nrefresh: 1h\nsecrets:\n';
    for (let i = 0; i < N; i++) {
      emu.setSecret(`s${i}`, JSON.stringify({ user: `user-${i}`, password: `password-${i}` }));
      spec += `  s${i}:\n    ref: azure:${emu.ipVaultUrl}/secrets/s${i}#password\n`;
    }
    writeFileSync(path.join(dir, 'sidekey.yaml'), spec);
    const env = {
      ...process.env,
      NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem'),
      AZURE_CLIENT_ID: emu.clientId,
      AZURE_TENANT_ID: emu.tenantId,
      AZURE_FEDERATED_TOKEN_FILE: path.join(dir, 'token'),
      AZURE_AUTHORITY_HOST: emu.authorityHost,
    };
    const out = path.join(dir, 'out');
    const agent = (args: string[]): ChildProcess =>
      spawn(process.execPath, [BIN, 'agent', ...args, '-c', path.join(dir, 'sidekey.yaml')], {
        cwd: dir,
        env,
        stdio: 'ignore',
      });

    const toReady: number[] = [];
    const before = emu.requests.length;
    for (let i = 0; i < RUNS; i++) {
      toReady.push(await spawnToReady(() => agent([]), out, { timeoutMs: 30_000 }));
    }
    const perRun = (emu.requests.length - before) / RUNS;

    rmSync(out, { recursive: true, force: true });
    const child = agent([]);
    let samples: Awaited<ReturnType<typeof sampleMemory>>;
    try {
      await pollUntil(() => ready(out), 30_000);
      // V8's memory reducer shrinks the heap once the agent has been idle a while; on a loaded machine
      // that took 30–50 s after the first write, so sample for 60 s and take the last figure.
      samples = await sampleMemory(child.pid!, 60);
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
    return [
      steadyRssRow(SECTION, samples, 30),
      {
        section: SECTION,
        metric: 'spawn → all files written (..data visible)',
        value: median(toReady),
        unit: 'ms',
        note: `median of ${RUNS}; ${minMax(toReady)}; ${perRun.toFixed(0)} HTTPS requests per start (challenge, token, ${N} reads)`,
      },
    ];
  } finally {
    await emu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
