import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { CANARY } from './cli.ts';

/** Temp directories made by {@link tempDir} in this test file; removed after the file's tests. */
const made: string[] = [];
// Registered when a test file imports this module (collection time): a hook registered from inside a
// running test would be ignored.
afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp directory holding `files` (relative path → content); removed after the test file. */
export function tempDir(files: Record<string, string> = {}, prefix = 'sidekey-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  writeFiles(dir, files);
  return dir;
}

export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
}

/** A local secrets file whose db password is the canary (it must never be printed). */
export function secretsYaml(password: string = CANARY, token = 'tok-1'): string {
  return `db:\n  user: app\n  password: ${password}\napi:\n  token: ${token}\n  scopes: [read]\n`;
}

/** A spec with the given secrets block (YAML, indented under `secrets:`) and extra top-level YAML. */
export function specYaml(secrets: string, extra = ''): string {
  return `apiVersion: sidekey.io/v1\nkind: SecretSpec\noutput:\n  dir: out\n${extra}secrets:\n${secrets}`;
}

/** The usual two-secret spec: a raw password (env DB_PASSWORD) and the api map as JSON. */
export const BASIC_SECRETS = `  db-password:
    ref: file:secrets.yaml#db.password
    env: DB_PASSWORD
  api:
    ref: file:secrets.yaml#api
    format: json
    file: api/token.json
`;
