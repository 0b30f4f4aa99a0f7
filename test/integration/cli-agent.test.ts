import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { CANARY, runCli, spawnCli, waitFor } from '../helpers/cli.ts';
import { BASIC_SECRETS, secretsYaml, specYaml, tempDir, writeFiles } from '../helpers/fixtures.ts';

/** The real `sidekey agent` as a process against temp directories. */

function readJsonLines(s: string): Array<Record<string, unknown>> {
  return s
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function expectOneErrorLine(stderr: string, code: string, mentions: string): void {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^${code}: `));
  expect(lines[0]).toContain(mentions);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('sidekey agent --once', () => {
  test('writes every file and exits 0 (spec from -c)', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const r = await runCli(['agent', '--once', '-c', path.join(dir, 'sidekey.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    const out = path.join(dir, 'out');
    expect(readFileSync(path.join(out, 'db-password'), 'utf8')).toBe(CANARY);
    expect(JSON.parse(readFileSync(path.join(out, 'api/token.json'), 'utf8'))).toEqual({
      token: 'tok-1',
      scopes: ['read'],
    });
    expect(existsSync(path.join(out, '..data'))).toBe(true);
    // The log is JSON lines on stderr and ends with the summary.
    const logs = readJsonLines(r.stderr);
    expect(logs.at(-1)?.msg).toMatch(/wrote all secrets/);
    expect(r.stdout).toBe('');
  });

  test('a restart (a new process, a new fingerprint key) with unchanged sources rewrites nothing', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const out = path.join(dir, 'out');
    const status = () =>
      JSON.parse(readFileSync(path.join(out, '.sidekey-status.json'), 'utf8')) as {
        secrets: Record<string, { version: string; fingerprint: string }>;
      };
    const first = await runCli(['agent', '--once', '-c', path.join(dir, 'sidekey.yaml')]);
    expect(first.code, first.stderr).toBe(0);
    const gen = readlinkSync(path.join(out, '..data'));
    const s1 = status().secrets['db-password']!;
    expect(s1.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(s1).not.toHaveProperty('sha256');
    const second = await runCli(['agent', '--once', '-c', path.join(dir, 'sidekey.yaml')]);
    expect(second.code, second.stderr).toBe(0);
    expect(readlinkSync(path.join(out, '..data'))).toBe(gen);
    const logs = readJsonLines(second.stderr);
    expect(logs.find((l) => Array.isArray(l.changedFiles))?.changedFiles).toEqual([]);
    // The file: version and the fingerprint are keyed per process: new values, same files.
    const s2 = status().secrets['db-password']!;
    expect(s2.version).not.toBe(s1.version);
    expect(s2.fingerprint).not.toBe(s1.fingerprint);
  });

  test('reads the spec from SIDEKEY_SPEC (JSON), relative refs against the working directory', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml() });
    const spec = {
      apiVersion: 'sidekey.io/v1',
      kind: 'SecretSpec',
      output: { dir: path.join(dir, 'mount') },
      secrets: { password: { ref: 'file:secrets.yaml#db.password', mode: '0400' } },
    };
    const r = await runCli(['agent', '--once'], { cwd: dir, env: { SIDEKEY_SPEC: JSON.stringify(spec) } });
    expect(r.code, r.stderr).toBe(0);
    const file = path.join(dir, 'mount', 'password');
    expect(readFileSync(file, 'utf8')).toBe(CANARY);
  });

  test('a failure exits non-zero with one line naming the ref, and writes nothing', async () => {
    const dir = tempDir({
      'secrets.yaml': secretsYaml(),
      'sidekey.yaml': specYaml(`${BASIC_SECRETS}  missing:\n    ref: file:secrets.yaml#db.nope\n`),
    });
    const r = await runCli(['agent', '--once', '-c', path.join(dir, 'sidekey.yaml')]);
    expect(r.code).toBe(1);
    expectOneErrorLine(r.stderr, 'SK_ERR_KEY_NOT_FOUND', 'file:secrets.yaml#db.nope');
    expect(r.stdout).toBe('');
    // No partial file set: the good secrets were not written either.
    const out = path.join(dir, 'out');
    expect(existsSync(out) ? readdirSync(out).filter((f) => !f.startsWith('.sidekey')) : []).toEqual([]);
  });

  test('an invalid spec exits 2 with one line naming the field', async () => {
    const r = await runCli(['agent', '--once'], {
      env: { SIDEKEY_SPEC: JSON.stringify({ apiVersion: 'sidekey.io/v1', kind: 'SecretSpec', secrets: 3 }) },
    });
    expect(r.code).toBe(2);
    expectOneErrorLine(r.stderr, 'SK_ERR_SPEC_INVALID', 'SIDEKEY_SPEC');
  });

  test('no spec at all is a usage error', async () => {
    const r = await runCli(['agent', '--once'], { env: { SIDEKEY_SPEC: undefined } });
    expect(r.code).toBe(2);
    expectOneErrorLine(r.stderr, 'SK_ERR_CLI_USAGE', 'SIDEKEY_SPEC');
  });
});

describe('sidekey agent (long-running)', () => {
  test('--probe fails before the first write and passes after; rotates on change; exits 0 on SIGTERM', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const spec = path.join(dir, 'sidekey.yaml');
    const out = path.join(dir, 'out');

    const before = await runCli(['agent', '--probe', '-c', spec]);
    expect(before.code).toBe(1);
    expect(before.stderr).toMatch(/not ready/);

    const agent = spawnCli(['agent', '-c', spec]);
    try {
      await agent.waitForOutput('ready: first complete write done');
      expect(readFileSync(path.join(out, 'db-password'), 'utf8')).toBe(CANARY);
      const after = await runCli(['agent', '--probe', '-c', spec]);
      expect(after.code, after.stderr).toBe(0);

      // Rotation: the file source changes, the agent rewrites the file set.
      writeFileSync(path.join(dir, 'secrets.yaml'), secretsYaml(`${CANARY}-v2`));
      await waitFor(() => readFileSync(path.join(out, 'db-password'), 'utf8') === `${CANARY}-v2`, 10_000);
      await agent.waitForOutput('files updated');
    } finally {
      const r = await agent.stop('SIGTERM');
      expect(r.code, r.stderr).toBe(0);
      expect(r.signal).toBeNull();
      const logs = readJsonLines(r.stderr);
      expect(logs.map((l) => l.msg)).toContain('stopped');
    }
    // Stopping keeps the files (the pod is going away; an init-less restart reuses them).
    expect(existsSync(path.join(out, '..data'))).toBe(true);
  });

  test('exits 0 when agent.exitFile appears (Jobs)', async () => {
    const dir = tempDir({
      'secrets.yaml': secretsYaml(),
      'sidekey.yaml': specYaml(BASIC_SECRETS, 'agent:\n  exitFile: done/exit\n'),
    });
    const agent = spawnCli(['agent', '-c', path.join(dir, 'sidekey.yaml')]);
    await agent.waitForOutput('ready: first complete write done');
    writeFiles(dir, { 'done/exit': '' });
    const r = await Promise.race([
      agent.exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('agent did not exit')), 10_000)),
    ]).finally(() => agent.child.kill('SIGKILL'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/exit file appeared/);
  });

  test('SIGINT also stops it cleanly', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const agent = spawnCli(['agent', '-c', path.join(dir, 'sidekey.yaml')]);
    await agent.waitForOutput('ready: first complete write done');
    const r = await agent.stop('SIGINT');
    expect(r.code, r.stderr).toBe(0);
  });

  test('maxStale action fail: a source broken for longer than maxStale.after stops the agent (exit 1)', async () => {
    const dir = tempDir({
      'secrets.yaml': secretsYaml(),
      'sidekey.yaml': specYaml(
        BASIC_SECRETS,
        'maxStale:\n  after: 1s\n  action: fail\nbackoff:\n  initial: 200ms\n',
      ),
    });
    const agent = spawnCli(['agent', '-c', path.join(dir, 'sidekey.yaml')]);
    await agent.waitForOutput('ready: first complete write done');
    writeFiles(dir, { 'secrets.yaml': 'db: {}\n' });
    const r = await Promise.race([
      agent.exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('agent did not exit')), 15_000)),
    ]).finally(() => agent.child.kill('SIGKILL'));
    expect(r.code).toBe(1);
    const errLines = r.stderr.split('\n').filter((l) => l.startsWith('SK_ERR_'));
    expect(errLines).toHaveLength(1);
    expect(errLines[0]).toMatch(/^SK_ERR_STALE: /);
    // The last good files stay for the app until the pod is restarted.
    expect(readFileSync(path.join(dir, 'out', 'db-password'), 'utf8')).toBe(CANARY);
  });

  test('a first write that fails exits non-zero with one line', async () => {
    const dir = tempDir({ 'sidekey.yaml': specYaml('  a:\n    ref: file:absent.yaml#x\n') });
    const r = await runCli(['agent', '-c', path.join(dir, 'sidekey.yaml')]);
    expect(r.code).toBe(1);
    const errLines = r.stderr.split('\n').filter((l) => l.startsWith('SK_ERR_'));
    expect(errLines).toHaveLength(1);
    expect(errLines[0]).toMatch(/^SK_ERR_SOURCE_NOT_FOUND: .*absent\.yaml/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
