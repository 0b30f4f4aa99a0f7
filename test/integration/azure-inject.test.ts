import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { CANARY, runCli } from '../helpers/cli.ts';
import { type AzureEmulator, startAzureEmulator } from './servers/azure-emulator.ts';

/**
 * `sidekey inject -f` for an AKS pod with azure: refs (the real CLI), and then the agent run the way
 * the injected pod runs it: with the SIDEKEY_SPEC and AZURE_* environment the injection gave its
 * agent container, against the Key Vault / Entra emulator. Only what a pod has and a test process has
 * not is swapped: the projected token's path (the kubelet writes it) and the output directory.
 */

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '00000000-1111-2222-3333-444444444444';
const PROJECTED = 'eyJhbGciOiJSUzI1NiJ9.injected-pod-token.sig';

let emu: AzureEmulator;
let dir: string;
beforeAll(async () => {
  emu = await startAzureEmulator({ tenantId: TENANT, clientId: CLIENT });
  dir = mkdtempSync(path.join(tmpdir(), 'sk-azure-inject-'));
  emu.trustAssertion(PROJECTED);
  emu.setSecret('db', JSON.stringify({ user: 'shop', password: CANARY }));
});
afterAll(async () => {
  await emu?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: tests read deep fields of manifests
type Json = Record<string, any>;

function pod(annotations: Record<string, string>): Json {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'shop', annotations: { 'sidekey.io/inject': 'true', ...annotations } },
    spec: { serviceAccountName: 'shop', containers: [{ name: 'app', image: 'shop/app:1' }] },
  };
}

describe('sidekey inject -f with azure: refs (AKS Workload Identity)', () => {
  it('wires the agent (token with the Entra audience, AZURE_* env), and that agent reads Key Vault', async () => {
    const config = path.join(dir, 'webhook.yaml');
    writeFileSync(
      config,
      YAML.stringify({ backends: { azure: { tenantId: TENANT, authorityHost: emu.authorityHost } } }),
    );
    const file = path.join(dir, 'pod.yaml');
    writeFileSync(
      file,
      YAML.stringify(
        pod({
          'sidekey.io/azure-client-id': CLIENT,
          'sidekey.io/secret-db-password': `azure:${emu.ipVaultUrl}/secrets/db#password`,
        }),
      ),
    );
    const r = await runCli(['inject', '-f', file, '--config', config, '--kube-version', '1.30']);
    expect(r.code, r.stderr).toBe(0);
    const injected = YAML.parse(r.stdout) as Json;
    const agent = injected.spec.initContainers[0];
    const env = Object.fromEntries(
      (agent.env as Array<{ name: string; value: string }>).map((e) => [e.name, e.value]),
    );
    expect(env).toMatchObject({
      AZURE_CLIENT_ID: CLIENT,
      AZURE_TENANT_ID: TENANT,
      AZURE_AUTHORITY_HOST: emu.authorityHost,
    });
    const tokenVolume = injected.spec.volumes.find((v: Json) => v.name === 'sidekey-token');
    const projection = tokenVolume.projected.sources.find((s: Json) => s.serviceAccountToken);
    expect(projection.serviceAccountToken.audience).toBe('api://AzureADTokenExchange');
    const mount = agent.volumeMounts.find((m: Json) => m.name === 'sidekey-token');
    expect(env.AZURE_FEDERATED_TOKEN_FILE).toBe(`${mount.mountPath}/${projection.serviceAccountToken.path}`);

    // Run the agent as the pod would: its env and spec, the kubelet's token at a local path.
    const tokenFile = path.join(dir, 'projected-token');
    writeFileSync(tokenFile, PROJECTED);
    writeFileSync(path.join(dir, 'ca.pem'), emu.ca);
    const spec = JSON.parse(env.SIDEKEY_SPEC!) as Json;
    spec.output.dir = path.join(dir, 'out');
    const run = await runCli(['agent', '--once'], {
      cwd: dir,
      env: {
        ...env,
        SIDEKEY_SPEC: JSON.stringify(spec),
        AZURE_FEDERATED_TOKEN_FILE: tokenFile,
        NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem'),
      },
    });
    expect(run.code, run.stderr).toBe(0);
    expect(readFileSync(path.join(dir, 'out', 'db-password'), 'utf8')).toBe(CANARY);
    expect(emu.assertions.at(-1)).toBe(PROJECTED);
    expect(run.stdout + run.stderr).not.toContain(CANARY);
  });

  it('exits 2 naming sidekey.io/azure-client-id when no client id is set anywhere', async () => {
    const file = path.join(dir, 'no-client.yaml');
    writeFileSync(file, YAML.stringify(pod({ 'sidekey.io/secret-db': 'azure:shop-kv/db#password' })));
    const r = await runCli(['inject', '-f', file]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toMatch(
      /^SK_ERR_ANNOTATION_INVALID: Pod\/shop: sidekey\.io\/azure-client-id: missing; /,
    );
  });

  it('exits 2 on a client id that is not a GUID, and on a malformed azure: ref, naming each', async () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(
      file,
      YAML.stringify(
        pod({ 'sidekey.io/azure-client-id': 'my-app', 'sidekey.io/secret-db': 'azure:shop-kv/db#password' }),
      ),
    );
    const r = await runCli(['inject', '-f', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('sidekey.io/azure-client-id');
    expect(r.stderr).toContain('is not a GUID');
    writeFileSync(
      file,
      YAML.stringify(
        pod({ 'sidekey.io/azure-client-id': CLIENT, 'sidekey.io/secret-db': `azure:kv/${CANARY}` }),
      ),
    );
    const r2 = await runCli(['inject', '-f', file]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('SK_ERR_REF_SYNTAX');
    expect(r2.stderr).toContain('sidekey.io/secret-db');
    expect(r2.stdout + r2.stderr).not.toContain(CANARY);
  });
});
