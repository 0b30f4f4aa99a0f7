import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine.js';
import { silentLogger } from '../../src/log.js';
import { defaultRegistry } from '../../src/providers/index.js';
import { resolveSpec } from '../../src/spec.js';
import { STATUS_FILE } from '../../src/writer.js';

/** The engine with the real `file:` provider, real timers and a real watcher. */

const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';

let tmp: string;
let engine: Engine | undefined;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'sk-engine-file-'));
});
afterEach(async () => {
  await engine?.stop();
  engine = undefined;
  await fs.rm(tmp, { recursive: true, force: true });
});

async function waitFor(cond: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Engine with the file provider', () => {
  it('renders a YAML source into files and follows edits to it', async () => {
    const src = path.join(tmp, 'secrets.yaml');
    await fs.writeFile(src, `db:\n  user: app\n  password: ${CANARY}\n`);
    const spec = resolveSpec(
      {
        apiVersion: 'sidekey.io/v1',
        kind: 'SecretSpec',
        output: { dir: './out' },
        refresh: '0',
        secrets: {
          'db-password': { ref: 'file:secrets.yaml#db.password' },
          'db.env': { ref: 'file:secrets.yaml#db', format: 'env' },
        },
      },
      { baseDir: tmp },
    );
    const changes: string[][] = [];
    engine = new Engine(spec, {
      registry: defaultRegistry(),
      log: silentLogger,
      onWrite: (r) => void changes.push(r.changedFiles),
    });
    const first = await engine.start();
    expect(first.first).toBe(true);
    const out = path.join(tmp, 'out');
    expect((await fs.readFile(path.join(out, 'db-password'), 'utf8')) === CANARY).toBe(true);
    // compare as booleans: a failing assertion must not print the canary
    const env = await fs.readFile(path.join(out, 'db.env'), 'utf8');
    expect(env.includes('user="app"') && env.includes(CANARY)).toBe(true);

    await fs.writeFile(src, 'db:\n  user: app\n  password: rotated\n');
    await waitFor(async () => (await fs.readFile(path.join(out, 'db-password'), 'utf8')) === 'rotated');
    expect(changes.at(-1)?.sort()).toEqual(['db-password', 'db.env']);

    // a broken source keeps the last good files and records the error
    await fs.writeFile(src, 'db: [unclosed\n');
    await waitFor(async () => {
      const st = JSON.parse(await fs.readFile(path.join(out, STATUS_FILE), 'utf8'));
      return st.secrets['db-password'].lastError?.code === 'SK_ERR_SOURCE_UNREADABLE';
    });
    expect(await fs.readFile(path.join(out, 'db-password'), 'utf8')).toBe('rotated');
  });

  it('one broken key fails only the secrets that use it; the error lists the keys of the map the path reached', async () => {
    const src = path.join(tmp, 'secrets.yaml');
    await fs.writeFile(src, `db:\n  user: app\n  password: ${CANARY}\napi:\n  token: t1\n`);
    const spec = resolveSpec(
      {
        apiVersion: 'sidekey.io/v1',
        kind: 'SecretSpec',
        output: { dir: './out' },
        refresh: '0',
        secrets: {
          'db-password': { ref: 'file:secrets.yaml#db.password' },
          'api-token': { ref: 'file:secrets.yaml#api.token' },
        },
      },
      { baseDir: tmp },
    );
    const errors = new Map<string, string>();
    engine = new Engine(spec, {
      registry: defaultRegistry(),
      log: silentLogger,
      onSecretError: (name, e) => void errors.set(name, String(e)),
    });
    await engine.start();
    const out = path.join(tmp, 'out');
    // db.password goes missing (renamed) while api.token changes: the token still follows.
    await fs.writeFile(src, 'db:\n  user: app\n  passwd: x\napi:\n  token: t2\n');
    await waitFor(async () => (await fs.readFile(path.join(out, 'api-token'), 'utf8')) === 't2');
    await waitFor(async () => errors.has('db-password'));
    expect(errors.get('db-password')).toBe(
      'SK_ERR_KEY_NOT_FOUND: file:secrets.yaml#db.password: key "db.password" not found (keys of "db": user, passwd)',
    );
    expect(errors.has('api-token')).toBe(false);
    expect((await fs.readFile(path.join(out, 'db-password'), 'utf8')) === CANARY).toBe(true);
  });
});
