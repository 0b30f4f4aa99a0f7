import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CANARY, runCli, spawnCli, waitFor } from '../../helpers/cli.ts';
import { type Moto, startMoto } from '../servers/moto.ts';
import { type OpenBao, startOpenBao } from '../servers/openbao.ts';

// The real CLI bundle (`node bin/sidekey.js`) with vault: and aws: refs from a sidekey.yaml, against a
// real OpenBao and a real moto_server on loopback. This is the recipe of docs/backends.md.

let bao: OpenBao;
let moto: Moto;
let admin: SecretsManagerClient;
let dir: string;
const awsEnv = {
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  AWS_REGION: 'us-east-1',
  // keep the SDK away from any profile or instance metadata of the machine
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_EC2_METADATA_DISABLED: 'true',
};

function specYaml(refresh: string): string {
  return `apiVersion: sidekey.io/v1
kind: SecretSpec
output:
  dir: ./out
refresh: ${refresh}
backends:
  vault:
    addr: ${bao.addr}
    authMethod: token
    tokenFile: ./vault-token
  aws:
    region: us-east-1
    endpoint: ${moto.endpoint}
secrets:
  db-password:
    ref: vault:secret/data/app/db#password
  db.env:
    ref: vault:secret/app/db
    format: env
  legacy-user:
    ref: vault:kv1/app/db#user
  api-key:
    ref: aws:prod/app/api#key
  cert.der:
    ref: aws:prod/app/cert-der
`;
}

beforeAll(async () => {
  [bao, moto] = await Promise.all([startOpenBao(), startMoto()]);
  await bao.api('POST', 'secret/data/app/db', { data: { username: 'app', password: CANARY } });
  await bao.api('POST', 'sys/mounts/kv1', { type: 'kv', options: { version: '1' } });
  await bao.api('POST', 'kv1/app/db', { user: 'legacy' });
  admin = new SecretsManagerClient({
    endpoint: moto.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  await admin.send(
    new CreateSecretCommand({ Name: 'prod/app/api', SecretString: JSON.stringify({ key: `k1-${CANARY}` }) }),
  );
  await admin.send(
    new CreateSecretCommand({ Name: 'prod/app/cert-der', SecretBinary: Buffer.from([0x30, 0x82, 0xff, 0]) }),
  );
  dir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-cli-backends-'));
  writeFileSync(path.join(dir, 'vault-token'), bao.rootToken);
});
afterAll(async () => {
  admin?.destroy();
  await Promise.allSettled([bao?.stop(), moto?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const out = (f: string) => readFileSync(path.join(dir, 'out', f));

describe('sidekey CLI with vault: and aws: refs against real servers', () => {
  it('agent --once writes every file and exits 0, printing no value', async () => {
    writeFileSync(path.join(dir, 'sidekey.yaml'), specYaml('5m'));
    const r = await runCli(['agent', '--once', '-c', 'sidekey.yaml'], { cwd: dir, env: awsEnv });
    expect(r.code, r.stderr).toBe(0);
    expect(out('db-password').toString()).toBe(CANARY);
    expect(out('db.env').toString()).toContain(`password="${CANARY}"`);
    expect(out('legacy-user').toString()).toBe('legacy');
    expect(out('api-key').toString()).toBe(`k1-${CANARY}`);
    expect(out('cert.der').equals(Buffer.from([0x30, 0x82, 0xff, 0]))).toBe(true);
    expect(r.stdout + r.stderr).not.toContain(CANARY);
    expect(r.stdout + r.stderr).not.toContain(bao.rootToken);
  });

  it('agent --once fails with a typed error naming the ref when a secret is missing', async () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'sidekey-cli-backends-missing-'));
    writeFileSync(path.join(d, 'vault-token'), bao.rootToken);
    writeFileSync(
      path.join(d, 'sidekey.yaml'),
      `${specYaml('5m')}  missing:\n    ref: aws:prod/app/nope#key\n`,
    );
    const r = await runCli(['agent', '--once', '-c', 'sidekey.yaml'], { cwd: d, env: awsEnv });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('SK_ERR_SOURCE_NOT_FOUND');
    expect(r.stderr).toContain('aws:prod/app/nope#key');
    expect(r.stderr).not.toContain('Warning'); // no SDK noise around the one error line
    expect(r.stdout + r.stderr).not.toContain(CANARY);
    rmSync(d, { recursive: true, force: true });
  });

  it('dev renders from both backends and follows a rotation in each', async () => {
    writeFileSync(path.join(dir, 'sidekey.yaml'), specYaml('1s'));
    const dev = spawnCli(['dev', '-c', 'sidekey.yaml'], { cwd: dir, env: awsEnv });
    try {
      await dev.waitForOutput('Watching the sources', 30_000);
      expect(out('api-key').toString()).toBe(`k1-${CANARY}`);
      // rotate: a new AWSCURRENT in Secrets Manager, a new KV v2 version in OpenBao
      await admin.send(
        new PutSecretValueCommand({
          SecretId: 'prod/app/api',
          SecretString: JSON.stringify({ key: `k2-${CANARY}` }),
        }),
      );
      await bao.api('POST', 'secret/data/app/db', { data: { username: 'app', password: `${CANARY}-2` } });
      await waitFor(() => out('api-key').toString() === `k2-${CANARY}`, 15_000, 100);
      await waitFor(() => out('db-password').toString() === `${CANARY}-2`, 15_000, 100);
      await waitFor(() => out('db.env').toString().includes(`password="${CANARY}-2"`), 15_000, 100);
    } finally {
      const r = await dev.stop('SIGINT');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout + r.stderr).not.toContain(CANARY);
    }
  });
});
