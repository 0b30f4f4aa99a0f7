import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type GcpEmulator, startGcpEmulator } from '../test/integration/servers/gcp-emulator.ts';
import {
  benchRoot,
  exited,
  median,
  minMax,
  onceToExit,
  pollUntil,
  type Row,
  ready,
  sampleMemory,
  spawnSidekey,
  spawnToReady,
  steadyRssRow,
} from './lib.ts';

/**
 * The agent with 50 `gcp:` secrets (Google Cloud Secret Manager), read from the wire-level emulator
 * (test/integration/servers/gcp-emulator.ts) on loopback through the metadata-server token path (GKE
 * Workload Identity): resident memory of the real `node bin/sidekey.js agent` process once settled,
 * spawn → complete file set, and the API calls the first sync made. Same method as agent.bench.ts
 * (its 50 `file:` secrets are the row to compare with).
 */

const N = 50;
const RUNS = 7;
const SECTION = `agent (${N} secrets, gcp: emulator)`;
const GSA = 'bench@sk-emulated.iam.gserviceaccount.com';

export async function run(): Promise<Row[]> {
  const emu = await startGcpEmulator({ metadataServiceAccount: GSA });
  emu.grant(`serviceAccount:${GSA}`, '*');
  const dir = mkdtempSync(path.join(benchRoot(), 'sidekey-bench-gcp-'));
  try {
    const spec = fixture(emu, dir);
    const out = path.join(dir, 'out');
    return [...(await memory(emu, spec, out)), ...(await startup(spec, out))];
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await emu.close();
  }
}

/** 50 secrets: 30 plain payloads by short ref, 20 JSON payloads with #key by full name. */
function fixture(emu: GcpEmulator, dir: string): string {
  let spec = [
    'apiVersion: sidekey.io/v1',
    'kind: SecretSpec',
    'output:',
    '  dir: out',
    'refresh: 1h',
    'backends:',
    '  gcp:',
    `    project: ${emu.projectId}`,
    `    endpoint: ${emu.url}`,
    `    metadataHost: ${emu.host}`,
    'secrets:',
    '',
  ].join('\n');
  for (let i = 0; i < N; i++) {
    if (i < 30) {
      emu.addVersion(`s${i}`, `password-${i}`);
      spec += `  s${i}:\n    ref: gcp:s${i}\n`;
    } else {
      emu.addVersion(`j${i}`, JSON.stringify({ user: `user-${i}`, password: `password-${i}` }));
      spec += `  s${i}:\n    ref: gcp:projects/${emu.projectId}/secrets/j${i}#password\n`;
    }
  }
  const file = path.join(dir, 'sidekey.yaml');
  writeFileSync(file, spec);
  return file;
}

async function memory(emu: GcpEmulator, spec: string, out: string): Promise<Row[]> {
  rmSync(out, { recursive: true, force: true });
  const access0 = emu.count('access');
  const token0 = emu.count('metadata');
  const child = spawnSidekey(['agent', '-c', spec]);
  try {
    await pollUntil(() => ready(out), 20_000);
    const access = emu.count('access') - access0;
    const tokens = emu.count('metadata') - token0;
    // Steady state, as in agent.bench.ts: sample for 30 s and take the last figure.
    const samples = await sampleMemory(child.pid!, 30);
    return [
      steadyRssRow(SECTION, samples),
      {
        section: SECTION,
        metric: 'API calls for the first complete file set',
        value: access + tokens,
        unit: 'calls',
        max: N + 2,
        note: `${access} versions.access + ${tokens} metadata request(s) (token${tokens > 1 ? ', project' : ''}); no batch read exists`,
      },
    ];
  } finally {
    child.kill('SIGTERM');
    await exited(child);
  }
}

async function startup(spec: string, out: string): Promise<Row[]> {
  const toReady: number[] = [];
  const toExit: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    toReady.push(await spawnToReady(() => spawnSidekey(['agent', '-c', spec]), out, { timeoutMs: 20_000 }));
    toExit.push(await onceToExit(spec, out));
  }
  return [
    {
      section: SECTION,
      metric: 'spawn → all files written (..data visible)',
      value: median(toReady),
      unit: 'ms',
      max: 150,
      note: `median of ${RUNS}; ${minMax(toReady)} (one token + 50 reads over loopback)`,
    },
    {
      section: SECTION,
      metric: 'agent --once: spawn → exit 0',
      value: median(toExit),
      unit: 'ms',
      note: `median of ${RUNS}`,
    },
  ];
}
