import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ErrorCode } from '../../../src/errors.ts';
import type { StatusDocument } from '../../../src/writer.ts';
import { CANARY, type CliProcess, runCli, spawnCli, waitFor } from '../../helpers/cli.ts';
import { tempDir } from '../../helpers/fixtures.ts';
import { FAULT_MODES, type FaultMode, type FaultProxy, startFaultProxy } from '../servers/fault-proxy.ts';

/**
 * Fault drills: the real agent (`node bin/sidekey.js agent`) reads one secret from a real backend
 * (OpenBao, moto) through a fault-injecting proxy, and one `file:` secret (another backend, which
 * must not notice). For each fault mode, while the fault lasts:
 *
 * - the files are kept (the last good value stays on disk),
 * - the status file says why (`lastError`, the expected code, naming the ref) within
 *   `fetchTimeout` + 2 s of the first request that met the fault,
 * - the request rate at the proxy stays bounded (backoff; no retry storm),
 * - the other backend's secret still follows its source,
 * - `agent --once` fails within `agent.onceTimeout` with exactly one `SK_ERR_*` line;
 *
 * and once the fault ends, the agent picks up a new value within one refresh (plus the retry that
 * is due: `backoff.max` = `refresh`). The agent's stderr stays JSON lines throughout: no SDK warnings.
 */

/** Short settings, so the whole tier runs in about a minute per backend. */
export const DRILL = {
  refreshMs: 1000,
  fetchTimeoutMs: 1500,
  onceTimeoutMs: 3000,
  /** The per-attempt timeout given to the backend (Vault's `timeout`). */
  attemptTimeoutMs: 1000,
  /** How long each fault is held, after the status has said why. */
  holdMs: 2500,
} as const;

/** Settings every drill spec has (YAML, top level). */
export const DRILL_SPEC = `refresh: ${DRILL.refreshMs}ms
jitter: 0
backoff: { initial: 250ms, max: ${DRILL.refreshMs}ms }
fetchTimeout: ${DRILL.fetchTimeoutMs}ms
agent: { onceTimeout: ${DRILL.onceTimeoutMs}ms }
`;

export interface DrillTarget {
  /** `vault`, `aws`: the word the error lines name. */
  readonly backend: string;
  /** The ref of the drilled secret, e.g. `vault:secret/data/drill#value`. */
  readonly ref: string;
  /** Where the real server listens (the proxy forwards there). */
  readonly upstream: { host: string; port: number };
  /** The `backends:` block of the spec, given the proxy's URL. */
  backendsYaml(proxyUrl: string): string;
  /** Set the secret's value at the backend (directly, not through the proxy). */
  setValue(value: string): Promise<void>;
  /** Files the spec refers to (e.g. a token file), written next to it. */
  files?: Record<string, string>;
  env?: Record<string, string>;
  /** Codes the status may show for each fault. */
  expected: Record<Exclude<FaultMode, 'pass'>, readonly ErrorCode[]>;
  /**
   * Most requests the proxy may see per second of outage. The agent's own bound is: one refresh
   * attempt at a time per secret, at most `1 + retries` requests per attempt, attempts spaced by
   * backoff; a retry storm would be hundreds.
   */
  readonly maxRequestsPerSecond: number;
}

const DRILLED = 'drilled';

/** How a timeout reads: the engine's deadline, or a request's own timeout (`vault timed out`). */
const TIMED_OUT = /no answer within|timed out/;

function specYaml(t: DrillTarget, proxyUrl: string, out: string): string {
  return `apiVersion: sidekey.io/v1
kind: SecretSpec
output: { dir: ./${out} }
${DRILL_SPEC}backends:
${t.backendsYaml(proxyUrl)}
secrets:
  ${DRILLED}: { ref: "${t.ref}" }
  local: { ref: "file:local.yaml#v" }
`;
}

export function faultDrills(
  name: string,
  setup: () => Promise<{ target: DrillTarget; stop(): Promise<void> }>,
) {
  describe(`fault drills: ${name}`, () => {
    let target: DrillTarget;
    let stopServer: (() => Promise<void>) | undefined;
    let proxy: FaultProxy;
    let dir: string;
    let agent: CliProcess;
    let generation = 0;

    const read = (f: string) => readFileSync(path.join(dir, 'out', f), 'utf8');
    const status = () =>
      JSON.parse(readFileSync(path.join(dir, 'out', '.sidekey-status.json'), 'utf8')) as StatusDocument;

    beforeAll(async () => {
      const s = await setup();
      target = s.target;
      stopServer = s.stop;
      proxy = await startFaultProxy(target.upstream);
      dir = tempDir({ 'local.yaml': 'v: local-0\n', ...target.files }, 'sidekey-drill-');
      writeFileSync(path.join(dir, 'sidekey.yaml'), specYaml(target, proxy.url, 'out'));
      writeFileSync(path.join(dir, 'once.yaml'), specYaml(target, proxy.url, 'once-out'));
      await target.setValue(`${CANARY}-0`);
      agent = spawnCli(['agent', '-c', 'sidekey.yaml'], { cwd: dir, env: target.env, timeoutMs: 600_000 });
      await agent.waitForOutput('ready: first complete write done', 30_000);
      expect(read(DRILLED) === `${CANARY}-0`).toBe(true);
    });

    afterAll(async () => {
      const r = await agent?.stop('SIGTERM');
      await proxy?.close();
      await stopServer?.();
      if (r) {
        expect(r.code, r.stderr.slice(-2000)).toBe(0);
        // Every line the agent printed is a JSON log line: no SDK warning, no stack, no value.
        for (const line of r.stderr.split('\n').filter((l) => l.trim() !== '')) {
          expect(() => JSON.parse(line), line.slice(0, 300)).not.toThrow();
        }
        expect(r.stdout + r.stderr).not.toContain(CANARY);
      }
    });

    test.each(FAULT_MODES)('%s', async (mode) => {
      // Each drill starts healthy (even after a failed one).
      await proxy.setMode('pass');
      await waitFor(() => status().secrets[DRILLED]?.lastError === undefined, 3 * DRILL.refreshMs + 2000, 50);
      const value = read(DRILLED);
      const before = proxy.requests;
      await proxy.setMode(mode);
      const faultStart = Date.now();

      // `agent --once` during the fault: fails within its deadline, one line.
      const once = (async () => {
        const t0 = Date.now();
        const r = await runCli(['agent', '--once', '-c', 'once.yaml'], { cwd: dir, env: target.env });
        return { ...r, ms: Date.now() - t0 };
      })();

      // The status says why, within fetchTimeout + 2 s of the first request that met the fault
      // (the first one comes with the next refresh or retry, within `refresh`).
      let firstFaulted = 0;
      let inFlight: string | undefined;
      const st = await waitFor(
        () => {
          if (!firstFaulted && proxy.requests > before) firstFaulted = proxy.requestTimes[before]!;
          const s = status().secrets[DRILLED];
          inFlight ??= s?.inFlight?.call;
          return s?.lastError ? s : undefined;
        },
        DRILL.refreshMs + DRILL.fetchTimeoutMs + 4000,
        50,
      );
      const seenAt = Date.now();
      const from = mode === 'refused' ? faultStart : firstFaulted || faultStart;
      expect(seenAt - from, `status after ${seenAt - from} ms`).toBeLessThanOrEqual(
        DRILL.fetchTimeoutMs + 2000 + (mode === 'refused' ? DRILL.refreshMs : 0),
      );
      expect(target.expected[mode], st.lastError!.message).toContain(st.lastError!.code);
      expect(st.lastError!.message).toContain(target.backend);
      expect(st.lastError!.message).not.toContain(CANARY);
      if (mode === 'hang' || mode === 'slow') expect(st.lastError!.message).toMatch(TIMED_OUT);
      // A call that hangs is in the status file while it hangs, before its deadline ends it.
      if (mode === 'hang') expect(inFlight).toBe(`${target.backend} fetch of ${target.ref}`);

      // Hold the fault: files kept, the other backend unaffected, the request rate bounded.
      writeFileSync(path.join(dir, 'local.yaml'), `v: local-${++generation}\n`);
      await waitFor(() => read('local') === `local-${generation}`, DRILL.refreshMs + 2000, 50);
      const holdFrom = Date.now();
      const reqFrom = proxy.requests;
      await new Promise((r) => setTimeout(r, DRILL.holdMs));
      const rate = (proxy.requests - reqFrom) / ((Date.now() - holdFrom) / 1000);
      expect(rate, `${proxy.requests - reqFrom} requests in ${DRILL.holdMs} ms`).toBeLessThanOrEqual(
        target.maxRequestsPerSecond,
      );
      expect(read(DRILLED) === value).toBe(true);
      expect(status().ready).toBe(true);

      const r = await once;
      expect(r.code, r.stderr).toBe(1);
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^SK_ERR_[A-Z_]+: /);
      expect(lines[0]).toContain(target.backend);
      // a hung or trickling backend is named as such: the call's deadline, or the request's own timeout
      if (mode === 'hang' || mode === 'slow') expect(lines[0]).toMatch(TIMED_OUT);
      // within the deadline, plus the process's own start (~0.3 s; slower on a loaded machine)
      expect(r.ms, lines[0]).toBeLessThanOrEqual(DRILL.onceTimeoutMs + 2000);
      expect(r.stdout + r.stderr).not.toContain(CANARY);

      // The fault ends: a new value is picked up within one refresh (plus the retry due by then).
      await target.setValue(`${CANARY}-${mode}`);
      await proxy.setMode('pass');
      const endAt = Date.now();
      await waitFor(() => read(DRILLED) === `${CANARY}-${mode}`, 2 * DRILL.refreshMs + 3000, 50);
      const recoveredMs = Date.now() - endAt;
      // the retry due within backoff.max (= refresh), and the fetch itself
      expect(recoveredMs).toBeLessThanOrEqual(DRILL.refreshMs + 1500);
      await waitFor(() => status().secrets[DRILLED]?.lastError === undefined, 2000, 50);
      expect(agent.child.exitCode).toBeNull();
      if (process.env.SIDEKEY_DRILL_REPORT) {
        // figures for docs and reviews: SIDEKEY_DRILL_REPORT=1 npx vitest run … faults/
        console.log(
          JSON.stringify({
            backend: target.backend,
            mode,
            code: st.lastError!.code,
            statusAfterMs: seenAt - from,
            holdRequestsPerSecond: Number(rate.toFixed(2)),
            onceExitMs: r.ms,
            recoveredMs,
          }),
        );
      }
    });
  });
}
