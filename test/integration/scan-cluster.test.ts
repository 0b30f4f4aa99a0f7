import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { runScan } from '../../src/migrate/cli.js';
import { runCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/fixtures.ts';
import { emulatorKubeconfig, K8sApiEmulator } from './providers/k8s-api-emulator.ts';
import { freePort } from './servers/common.ts';

/**
 * `sidekey scan` against the Kubernetes API emulator on a "large" cluster: paginated lists
 * (limit/continue), -o json|yaml carrying the same document, the progress line on a terminal, and
 * connection errors that name the API server.
 */

const PODS = 1203;

function kubeconfigFor(server: string): string {
  return emulatorKubeconfig(server, 'bulk');
}

function pod(i: number): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `worker-${String(i).padStart(4, '0')}`, namespace: i % 2 ? 'bulk' : 'other' },
    spec: {
      containers: [
        {
          name: 'app',
          image: 'app:1',
          env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }],
        },
      ],
    },
  };
}

describe('sidekey scan on a large cluster (API emulator)', () => {
  const api = new K8sApiEmulator();
  let kubeconfig = '';
  beforeAll(async () => {
    api.tokens.set('admin-token', '*');
    api.workloads.set(
      'pods',
      Array.from({ length: PODS }, (_, i) => pod(i)),
    );
    kubeconfig = kubeconfigFor(await api.listen());
  });
  afterAll(async () => {
    await api.close();
  });

  it('-A follows continue tokens through every page: nothing lost, nothing twice', async () => {
    const before = api.counts.list;
    api.listLimits.length = 0;
    const r = await runCli(['scan', '-A', '-o', 'json', '--chunk-size', '100'], {
      env: { KUBECONFIG: kubeconfig },
    });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    const names = j.workloads.map((w: { workload: string }) => w.workload);
    expect(names).toHaveLength(PODS);
    expect(new Set(names).size).toBe(PODS);
    expect(j.summary.findings).toBe(PODS);
    // 13 pages of pods (12 × 100 + 3), one (empty) page for each of the 6 other kinds.
    expect(api.counts.list - before).toBe(13 + 6);
    expect(api.listLimits.every((l) => l === 100)).toBe(true);
    // Not on a terminal: no progress line.
    expect(r.stderr).toBe('');
  });

  it('the default page size is 500, like kubectl', async () => {
    api.listLimits.length = 0;
    const r = await runCli(['scan', '-A', '-o', 'json'], { env: { KUBECONFIG: kubeconfig } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).workloads).toHaveLength(PODS);
    expect(api.listLimits.slice(0, 3)).toEqual([500, 500, 500]);
    expect(api.listLimits).toHaveLength(3 + 6);
  });

  it('-n pages within one namespace; -o yaml is the same document as -o json', async () => {
    const json = await runCli(['scan', '-o', 'json', '--chunk-size', '250'], {
      env: { KUBECONFIG: kubeconfig },
    });
    const yaml = await runCli(['scan', '-o', 'yaml', '--chunk-size', '250'], {
      env: { KUBECONFIG: kubeconfig },
    });
    expect(json.code, json.stderr).toBe(0);
    expect(yaml.code, yaml.stderr).toBe(0);
    const doc = JSON.parse(json.stdout);
    expect(doc.workloads).toHaveLength(Math.floor(PODS / 2));
    expect(doc.workloads.every((w: { namespace: string }) => w.namespace === 'bulk')).toBe(true);
    expect(YAML.parse(yaml.stdout)).toEqual(doc);
  });

  it('a bad --chunk-size or -o is a usage error naming the flag', async () => {
    const chunk = await runCli(['scan', '-A', '--chunk-size', '0'], { env: { KUBECONFIG: kubeconfig } });
    expect(chunk.code).toBe(2);
    expect(chunk.stderr).toMatch(/^SK_ERR_CLI_USAGE: --chunk-size 0/);
    const out = await runCli(['scan', '-A', '-o', 'wide'], { env: { KUBECONFIG: kubeconfig } });
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('SK_ERR_CLI_USAGE: -o wide: use table, json, yaml');
  });

  it('on a terminal, a progress line counts the listed objects and is erased before the result', async () => {
    const prev = process.env.KUBECONFIG;
    process.env.KUBECONFIG = kubeconfig;
    let out = '';
    let err = '';
    try {
      const code = await runScan(
        { allNamespaces: true, output: 'json', chunkSize: '400' },
        {
          stdout: (s) => {
            out += s;
          },
          stderr: (s) => {
            err += s;
          },
          readStdin: () => '',
          stderrIsTTY: true,
        },
      );
      expect(code).toBe(0);
    } finally {
      process.env.KUBECONFIG = prev;
    }
    expect(JSON.parse(out).workloads).toHaveLength(PODS);
    const updates = err.split('\r\x1b[2K').filter(Boolean);
    expect(updates.slice(0, 4)).toEqual([
      'scan: listing pods… 400 (400 objects)',
      'scan: listing pods… 800 (800 objects)',
      'scan: listing pods… 1200 (1200 objects)',
      `scan: listing pods… ${PODS} (${PODS} objects)`,
    ]);
    expect(updates.at(-1)).toBe(`scan: listing cronjobs… 0 (${PODS} objects)`);
    // The line is cleared at the end: the last thing written erases it.
    expect(err.endsWith('\r\x1b[2K')).toBe(true);
  });
});

describe('sidekey scan: connection errors name the API server', () => {
  it('no kubeconfig at all', async () => {
    const home = tempDir();
    const r = await runCli(['scan'], {
      env: { KUBECONFIG: undefined, HOME: home, KUBERNETES_SERVICE_HOST: undefined },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^SK_ERR_BACKEND_CONFIG: no kubeconfig found: set KUBECONFIG/);
  });

  it('an API server that does not answer', async () => {
    const server = `https://127.0.0.1:${await freePort()}`;
    const r = await runCli(['scan', '-A'], { env: { KUBECONFIG: kubeconfigFor(server) } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `SK_ERR_BACKEND_UNAVAILABLE: list pods in all namespaces: cannot reach ${server} (ECONNREFUSED)`,
    );
  });

  it('an HTTP error names the server too', async () => {
    const api = new K8sApiEmulator();
    const server = await api.listen();
    try {
      const r = await runCli(['scan', '-A'], { env: { KUBECONFIG: kubeconfigFor(server) } });
      // The emulator knows no token: 401.
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`SK_ERR_BACKEND_AUTH: list pods in all namespaces: HTTP 401 from ${server}`);
    } finally {
      await api.close();
    }
  });
});
