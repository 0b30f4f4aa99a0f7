import { existsSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CANARY, runCli, spawnCli, waitFor } from '../helpers/cli.ts';
import { BASIC_SECRETS, secretsYaml, specYaml, tempDir, writeFiles } from '../helpers/fixtures.ts';

/**
 * The agent's deadlines, as a process, against a backend that accepts requests and never answers
 * (a local HTTP server that holds every request): `agent --once` ends at `agent.onceTimeout` with one
 * line naming the call, even with a per-request timeout far longer; the long-running agent shows the
 * call in its status file while it hangs and ends it at `fetchTimeout` (rotation under faults: the
 * fault drills, test/integration/faults/).
 */

let server: http.Server;
let addr: string;
let held = 0;

beforeAll(async () => {
  server = http.createServer(() => {
    held++;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  addr = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

const VAULT = (dir: string, extra = '') =>
  `backends:\n  vault: { addr: "${addr}", authMethod: token, tokenFile: "${path.join(dir, 'token')}", timeout: 5m }\n${extra}`;

describe('agent deadlines against a backend that never answers', () => {
  test('--once exits 1 at agent.onceTimeout with one line naming the backend call, writing nothing', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), token: 'hvs.test-token' });
    writeFiles(dir, {
      'sidekey.yaml': specYaml(
        `${BASIC_SECRETS}  remote:\n    ref: vault:secret/data/app#password\n`,
        `${VAULT(dir)}agent: { onceTimeout: 1500ms }\n`,
      ),
    });
    const t0 = Date.now();
    const r = await runCli(['agent', '--once', '-c', path.join(dir, 'sidekey.yaml')]);
    const ms = Date.now() - t0;
    expect(r.code).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^SK_ERR_BACKEND_TIMEOUT: vault fetch of vault:secret\/data\/app#password: no answer within [\d.]+m?s \(agent\.onceTimeout\); the call was ended$/,
    );
    // the deadline, plus the process's own start; not the 5-minute request timeout
    expect(ms).toBeLessThan(1500 + 3000);
    expect(held).toBeGreaterThan(0);
    const out = path.join(dir, 'out');
    expect(existsSync(out) ? readdirSync(out).filter((f) => !f.startsWith('.sidekey')) : []).toEqual([]);
    expect(r.stdout + r.stderr).not.toContain(CANARY);
  });

  test('long-running: a first sync that hangs shows the call in the status file, and exits 1 at fetchTimeout', async () => {
    // (without a deadline it waited forever, its status file saying nothing)
    const dir2 = tempDir({ 'secrets.yaml': secretsYaml(), token: 'hvs.test-token' });
    writeFiles(dir2, {
      'sidekey.yaml': specYaml(
        `${BASIC_SECRETS}  remote:\n    ref: vault:secret/data/app#password\n`,
        `${VAULT(dir2)}fetchTimeout: 2500ms\n`,
      ),
    });
    const t0 = Date.now();
    const agent2 = spawnCli(['agent', '-c', path.join(dir2, 'sidekey.yaml')]);
    const statusFile = path.join(dir2, 'out', '.sidekey-status.json');
    const st = await waitFor(
      () => {
        if (!existsSync(statusFile)) return undefined;
        const s = JSON.parse(readFileSync(statusFile, 'utf8'));
        return s.secrets?.remote?.inFlight ? s : undefined;
      },
      5000,
      50,
    );
    expect(st.ready).toBe(false);
    expect(st.secrets.remote.inFlight.call).toBe('vault fetch of vault:secret/data/app#password');
    const r2 = await agent2.exited;
    expect(Date.now() - t0).toBeLessThan(2500 + 4000);
    expect(r2.code).toBe(1);
    const lines = r2.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{'));
    expect(lines).toEqual([
      'SK_ERR_BACKEND_TIMEOUT: vault fetch of vault:secret/data/app#password: no answer within 2.5s (fetchTimeout); the call was ended',
    ]);
  });
});
