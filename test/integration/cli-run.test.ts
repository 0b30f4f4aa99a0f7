import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { CANARY, runCli, spawnCli } from '../helpers/cli.ts';
import { BASIC_SECRETS, secretsYaml, specYaml, tempDir } from '../helpers/fixtures.ts';

/** The real `sidekey run -- <cmd>` as a process; the command is a small Node script. */

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * A child that reports what it got without printing any value: the *_FILE variables, SIDEKEY_DIR, the
 * mode of the directory holding it, and a hash of each file. On SIGHUP it reports the hashes again.
 */
const CHILD = `
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const h = (f) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const report = (tag) => {
  const files = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => k.endsWith('_FILE') && v.startsWith(process.env.SIDEKEY_DIR + '/')).map(([k, v]) => [k, { path: v, sha: h(v) }]));
  console.log(tag + ' ' + JSON.stringify({ files, dir: process.env.SIDEKEY_DIR, parentMode: (fs.statSync(path.dirname(process.env.SIDEKEY_DIR)).mode & 0o777).toString(8), hasValueEnv: Object.values(process.env).some((v) => v.includes('SKCANARY')) }));
};
process.on('SIGHUP', () => report('HUP'));
process.on('SIGTERM', () => { console.log('GOT SIGTERM'); process.exit(Number(process.env.EXIT_ON_TERM ?? 0)); });
report('START'); // after the handlers: the test signals as soon as it sees START
setInterval(() => {}, 1000);
`;

function parseReport(
  stdout: string,
  tag: string,
): {
  files: Record<string, { path: string; sha: string }>;
  dir: string;
  parentMode: string;
  hasValueEnv: boolean;
} {
  const line = stdout
    .split('\n')
    .filter((l) => l.startsWith(`${tag} `))
    .at(-1);
  if (!line) throw new Error(`no ${tag} line in:\n${stdout}`);
  return JSON.parse(line.slice(tag.length + 1));
}

describe('sidekey run', () => {
  test('gives the command <ENV>_FILE / SIDEKEY_<NAME>_FILE and SIDEKEY_DIR; private temp dir removed on exit', async () => {
    // No output.dir in the spec: a private temp dir is used.
    const spec = `apiVersion: sidekey.io/v1\nkind: SecretSpec\nsecrets:\n${BASIC_SECRETS}`;
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': spec });
    const child = spawnCli([
      'run',
      '-c',
      path.join(dir, 'sidekey.yaml'),
      '--',
      process.execPath,
      '-e',
      CHILD,
    ]);
    try {
      await child.waitForOutput('START ');
      const rep = parseReport(child.stdout(), 'START');
      expect(Object.keys(rep.files).sort()).toEqual(['DB_PASSWORD_FILE', 'SIDEKEY_API_FILE']);
      expect(rep.files.DB_PASSWORD_FILE!.path).toBe(path.join(rep.dir, 'db-password'));
      expect(rep.files.DB_PASSWORD_FILE!.sha).toBe(sha(CANARY));
      expect(rep.files.SIDEKEY_API_FILE!.path).toBe(path.join(rep.dir, 'api/token.json'));
      expect(rep.parentMode).toBe('700');
      expect(rep.hasValueEnv).toBe(false);
      expect(existsSync(rep.dir)).toBe(true);
      const r = await child.stop('SIGTERM');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('GOT SIGTERM');
      expect(existsSync(rep.dir)).toBe(false);
      expect(existsSync(path.dirname(rep.dir))).toBe(false);
    } finally {
      child.child.kill('SIGKILL');
    }
  });

  test("removes from the command's environment every variable a secret replaces, as the webhook does in a pod", async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const show = `console.log('ENV ' + JSON.stringify({ has: 'DB_PASSWORD' in process.env, keep: process.env.KEEP_ME, file: 'DB_PASSWORD_FILE' in process.env }))`;
    // A stale value in the shell: the command must not see it (it would shadow the file).
    const r = await runCli(
      ['run', '-c', path.join(dir, 'sidekey.yaml'), '--', process.execPath, '-e', show],
      {
        env: { DB_PASSWORD: `${CANARY}-stale`, KEEP_ME: 'yes' },
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.split('ENV ')[1]!)).toEqual({ has: false, keep: 'yes', file: true });
    expect(r.stderr).toContain('sidekey: removed DB_PASSWORD from ');
    expect(r.stdout + r.stderr).not.toContain(CANARY);
  });

  test('onChange signal:HUP and a command with no SIGHUP handler: it ends, and sidekey says why', async () => {
    const dir = tempDir({
      'secrets.yaml': secretsYaml(),
      'sidekey.yaml': specYaml(BASIC_SECRETS, 'onChange: signal:HUP\ndebounce: 50ms\n'),
    });
    const child = spawnCli([
      'run',
      '-c',
      path.join(dir, 'sidekey.yaml'),
      '--',
      process.execPath,
      '-e',
      "console.log('UP'); setInterval(() => {}, 1000)",
    ]);
    try {
      await child.waitForOutput('UP');
      writeFileSync(path.join(dir, 'secrets.yaml'), secretsYaml(`${CANARY}-new`));
      const r = await child.exited;
      expect(r.code).toBe(129);
      expect(r.stderr).toMatch(
        /was killed by SIGHUP: onChange sends it after files change, and a command without a SIGHUP handler ends on it; handle the signal, or use onChange: none/,
      );
    } finally {
      child.child.kill('SIGKILL');
    }
  });

  test('exits with the code of the command', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const r = await runCli([
      'run',
      '-c',
      path.join(dir, 'sidekey.yaml'),
      '--',
      process.execPath,
      '-e',
      'process.exit(7)',
    ]);
    expect(r.code, r.stderr).toBe(7);
    // Options after the command belong to the command, even without `--`.
    const r2 = await runCli([
      'run',
      '-c',
      path.join(dir, 'sidekey.yaml'),
      process.execPath,
      '-e',
      'process.exit(3)',
    ]);
    expect(r2.code, r2.stderr).toBe(3);
  });

  test('forwards SIGTERM/SIGINT to the command and exits with its code (128+signal if killed)', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const spec = path.join(dir, 'sidekey.yaml');
    const handled = spawnCli(['run', '-c', spec, '--', process.execPath, '-e', CHILD], {
      env: { EXIT_ON_TERM: '5' },
    });
    await handled.waitForOutput('START ');
    const r1 = await handled.stop('SIGTERM');
    expect(r1.stdout).toContain('GOT SIGTERM');
    expect(r1.code).toBe(5);

    // A command without a handler dies of the signal: 128 + 2.
    const plain = spawnCli([
      'run',
      '-c',
      spec,
      '--',
      process.execPath,
      '-e',
      'console.log("UP"); setInterval(() => {}, 1000)',
    ]);
    await plain.waitForOutput('UP');
    const r2 = await plain.stop('SIGINT');
    expect(r2.code).toBe(130);
  });

  test('on change: files follow and the command gets the onChange signal', async () => {
    const dir = tempDir({
      'secrets.yaml': secretsYaml(),
      'sidekey.yaml': specYaml(BASIC_SECRETS, 'onChange: signal:HUP\ndebounce: 50ms\n'),
    });
    const child = spawnCli([
      'run',
      '-c',
      path.join(dir, 'sidekey.yaml'),
      '--',
      process.execPath,
      '-e',
      CHILD,
    ]);
    try {
      await child.waitForOutput('START ');
      writeFileSync(path.join(dir, 'secrets.yaml'), secretsYaml(`${CANARY}-new`));
      await child.waitForOutput('HUP ', 10_000);
      const rep = parseReport(child.stdout(), 'HUP');
      // The command re-reads the file on HUP and sees the new value.
      expect(rep.files.DB_PASSWORD_FILE!.sha).toBe(sha(`${CANARY}-new`));
      expect(child.stderr()).toMatch(/sidekey: updated .*db-password/);
    } finally {
      await child.stop('SIGTERM');
    }
  });

  test('a command that cannot start: SK_ERR_COMMAND, one line', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const r = await runCli(['run', '-c', path.join(dir, 'sidekey.yaml'), '--', '/nonexistent/command', 'x']);
    expect(r.code).toBe(1);
    const errs = r.stderr.split('\n').filter((l) => l.startsWith('SK_ERR_'));
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/^SK_ERR_COMMAND: .*\/nonexistent\/command/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('a render failure stops before starting the command', async () => {
    const dir = tempDir({
      'secrets.yaml': secretsYaml(),
      'sidekey.yaml': specYaml('  a:\n    ref: file:secrets.yaml#nope\n'),
    });
    const marker = path.join(dir, 'started');
    const r = await runCli([
      'run',
      '-c',
      path.join(dir, 'sidekey.yaml'),
      '--',
      process.execPath,
      '-e',
      `require('node:fs').writeFileSync(${JSON.stringify(marker)}, '')`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^SK_ERR_KEY_NOT_FOUND: file:secrets\.yaml#nope: [^\n]*$/);
    expect(existsSync(marker)).toBe(false);
  });

  test('no command: usage error', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const r = await runCli(['run', '-c', path.join(dir, 'sidekey.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
