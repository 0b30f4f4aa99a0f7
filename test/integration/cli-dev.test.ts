import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import YAML from 'yaml';
import { CANARY, REPO_ROOT, runCli, spawnCli, waitFor } from '../helpers/cli.ts';
import { BASIC_SECRETS, secretsYaml, specYaml, tempDir } from '../helpers/fixtures.ts';

/** The real `sidekey dev` as a process against temp directories. */

describe('sidekey dev', () => {
  test('renders, says what it wrote (names, not values), follows source changes', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const out = path.join(dir, 'out');
    // Default config: ./sidekey.yaml in the working directory.
    const dev = spawnCli(['dev'], { cwd: dir });
    try {
      await dev.waitForOutput('Watching the sources');
      expect(dev.stdout()).toContain('db-password');
      expect(dev.stdout()).toContain('api/token.json');
      expect(dev.stdout()).toContain('$DB_PASSWORD_FILE');
      expect(dev.stdout()).not.toMatch(/^\{/m); // human-readable, not JSON
      expect(readFileSync(path.join(out, 'db-password'), 'utf8')).toBe(CANARY);

      const t0 = Date.now();
      writeFileSync(path.join(dir, 'secrets.yaml'), secretsYaml(`${CANARY}-2`));
      await waitFor(() => readFileSync(path.join(out, 'db-password'), 'utf8') === `${CANARY}-2`, 5000, 10);
      // The target is ≤ 1 s (measured by `npm run bench`); this bound only catches a broken watch.
      expect(Date.now() - t0).toBeLessThan(5000);
      await dev.waitForOutput(/updated\s+.*db-password/);
      // Only the changed file is reported.
      expect(dev.stdout()).not.toMatch(/updated\s+.*api\/token\.json/);
    } finally {
      const r = await dev.stop('SIGINT');
      expect(r.code, r.stderr).toBe(0);
    }
  });

  test('-o overrides the output directory', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const other = path.join(dir, 'elsewhere');
    const dev = spawnCli(['dev', '-c', path.join(dir, 'sidekey.yaml'), '--output-dir', other]);
    try {
      await dev.waitForOutput('Watching the sources');
      expect(readFileSync(path.join(other, 'db-password'), 'utf8')).toBe(CANARY);
      expect(existsSync(path.join(dir, 'out'))).toBe(false);
    } finally {
      await dev.stop('SIGTERM');
    }
  });

  test('keeps running with the last good files when a source breaks, and recovers', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const out = path.join(dir, 'out');
    const dev = spawnCli(['dev', '-c', path.join(dir, 'sidekey.yaml')]);
    try {
      await dev.waitForOutput('Watching the sources');
      // The key disappears: one failure line, files unchanged.
      writeFileSync(path.join(dir, 'secrets.yaml'), 'db:\n  user: app\napi:\n  token: t\n');
      await dev.waitForOutput(/failed.*SK_ERR_KEY_NOT_FOUND: .*file:secrets\.yaml#db\.password/, 10_000);
      expect(readFileSync(path.join(out, 'db-password'), 'utf8')).toBe(CANARY);
      expect(dev.stderr()).not.toMatch(/\n\s+at /);
      // Fixed: files follow again.
      writeFileSync(path.join(dir, 'secrets.yaml'), secretsYaml(`${CANARY}-3`));
      await waitFor(() => readFileSync(path.join(out, 'db-password'), 'utf8') === `${CANARY}-3`, 10_000);
    } finally {
      const r = await dev.stop('SIGINT');
      expect(r.code).toBe(0);
    }
  });

  test('reloads the spec when it changes', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const out = path.join(dir, 'out');
    const dev = spawnCli(['dev', '-c', path.join(dir, 'sidekey.yaml')]);
    try {
      await dev.waitForOutput('Watching the sources');
      writeFileSync(
        path.join(dir, 'sidekey.yaml'),
        specYaml(`${BASIC_SECRETS}  user:\n    ref: file:secrets.yaml#db.user\n`),
      );
      await dev.waitForOutput(/reloaded .*3 file\(s\)/, 10_000);
      expect(readFileSync(path.join(out, 'user'), 'utf8')).toBe('app');
      // A broken spec is reported and the last good files stay.
      writeFileSync(path.join(dir, 'sidekey.yaml'), 'apiVersion: [');
      await dev.waitForOutput(/failed\s+SK_ERR_SPEC_PARSE/, 10_000);
      expect(readFileSync(path.join(out, 'user'), 'utf8')).toBe('app');
    } finally {
      await dev.stop('SIGINT');
    }
  });

  test('a second start over up-to-date files says "unchanged" for the files it did not rewrite', async () => {
    const dir = tempDir({ 'secrets.yaml': secretsYaml(), 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    const first = spawnCli(['dev', '-c', path.join(dir, 'sidekey.yaml')]);
    try {
      await first.waitForOutput('Watching the sources');
      expect(first.stdout()).toMatch(/^ {2}wrote {2}db-password /m);
      expect(first.stdout()).toContain('2 file(s) written to');
    } finally {
      await first.stop('SIGINT');
    }
    // Only the password changes while dev is not running.
    writeFileSync(path.join(dir, 'secrets.yaml'), secretsYaml(`${CANARY}-2`));
    const second = spawnCli(['dev', '-c', path.join(dir, 'sidekey.yaml')]);
    try {
      await second.waitForOutput('Watching the sources');
      expect(second.stdout()).toMatch(/^ {2}wrote {6}db-password /m);
      expect(second.stdout()).toMatch(/^ {2}unchanged {2}api\/token\.json /m);
      expect(second.stdout()).toContain('1 file(s) written, 1 unchanged in');
    } finally {
      await second.stop('SIGINT');
    }
  });

  test("the shipped example's URL template decodes back to the password, spaces included", async () => {
    const dir = tempDir();
    for (const f of ['sidekey.yaml', 'secrets.yaml', 'app.env']) {
      writeFileSync(path.join(dir, f), readFileSync(path.join(REPO_ROOT, 'examples', f), 'utf8'));
    }
    const password = 'dev pass@word:/+%? change me';
    const secrets = readFileSync(path.join(dir, 'secrets.yaml'), 'utf8').replace(
      'password: dev-password-change-me',
      `password: ${JSON.stringify(password)}`,
    );
    writeFileSync(path.join(dir, 'secrets.yaml'), secrets);
    const out = path.join(dir, 'o');
    const dev = spawnCli(['dev', '-c', path.join(dir, 'sidekey.yaml'), '-o', out]);
    try {
      await dev.waitForOutput('Watching the sources');
      const cfg = YAML.parse(readFileSync(path.join(out, 'config/database.yaml'), 'utf8'));
      const url = new URL(cfg.database.url);
      expect(decodeURIComponent(url.password)).toBe(password);
      expect(decodeURIComponent(url.username)).toBe('shop_app');
      expect(url.hostname).toBe('localhost');
      expect(url.pathname).toBe('/shop');
    } finally {
      await dev.stop('SIGINT');
    }
  });

  test('the shipped example renders (npm start)', async () => {
    const out = tempDir();
    const dev = spawnCli(['dev', '-c', 'examples/sidekey.yaml', '--output-dir', out], { cwd: REPO_ROOT });
    try {
      await dev.waitForOutput('Watching the sources');
      expect(readFileSync(path.join(out, 'db-password'), 'utf8')).toBe('dev-password-change-me');
      expect(JSON.parse(readFileSync(path.join(out, 'api/token.json'), 'utf8')).token).toBe('dev-token-0000');
      expect(readFileSync(path.join(out, 'config/database.yaml'), 'utf8')).toContain(
        'url: postgres://shop_app:dev-password-change-me@localhost:5432/shop',
      );
      expect(readFileSync(path.join(out, 'db.env'), 'utf8')).toMatch(/^password=/m);
      expect(readFileSync(path.join(out, 'smtp-password'), 'utf8')).toBe('dev-smtp-password');
    } finally {
      await dev.stop('SIGINT');
    }
  });
});

/**
 * Bad input: each case gives one line with an SK_ERR_* code naming the field or ref, no stack trace,
 * no partial file, and never the secret value.
 */
describe('sidekey dev: bad input', () => {
  const good = secretsYaml();
  const cases: Array<{
    name: string;
    files: Record<string, string>;
    code: string;
    exit: number;
    mentions: string;
    prepare?: (dir: string) => void;
  }> = [
    {
      name: 'malformed spec',
      files: { 'sidekey.yaml': 'apiVersion: sidekey.io/v1\nkind: SecretSpec\nsecrets: [\n' },
      code: 'SK_ERR_SPEC_PARSE',
      exit: 2,
      mentions: 'sidekey.yaml',
    },
    {
      name: 'unknown field',
      files: { 'sidekey.yaml': specYaml('  a:\n    ref: file:secrets.yaml\n    colour: red\n') },
      code: 'SK_ERR_SPEC_INVALID',
      exit: 2,
      mentions: 'secrets.a',
    },
    {
      name: 'unknown provider',
      files: { 'sidekey.yaml': specYaml('  a:\n    ref: nope:some/where\n') },
      code: 'SK_ERR_PROVIDER_UNKNOWN',
      exit: 2,
      mentions: 'secrets.a.ref',
    },
    {
      name: 'missing file',
      files: { 'sidekey.yaml': specYaml('  a:\n    ref: file:absent.yaml#x\n') },
      code: 'SK_ERR_SOURCE_NOT_FOUND',
      exit: 1,
      mentions: 'file:absent.yaml#x',
    },
    {
      name: 'missing key',
      files: { 'sidekey.yaml': specYaml('  a:\n    ref: file:secrets.yaml#db.nope\n') },
      code: 'SK_ERR_KEY_NOT_FOUND',
      exit: 1,
      mentions: 'file:secrets.yaml#db.nope',
    },
    {
      name: 'bad template (syntax)',
      files: { 'sidekey.yaml': specYaml('  a:\n    ref: file:secrets.yaml#db\n    template: "{% if %}x"\n') },
      code: 'SK_ERR_TEMPLATE_SYNTAX',
      exit: 2,
      mentions: 'secrets.a.template',
    },
    {
      name: 'bad template (render)',
      files: {
        'sidekey.yaml': specYaml('  a:\n    ref: file:secrets.yaml#db\n    template: "{{ data.nokey }}"\n'),
      },
      code: 'SK_ERR_TEMPLATE_RENDER',
      exit: 1,
      mentions: 'secret "a"',
    },
    {
      name: 'bad mode',
      files: { 'sidekey.yaml': specYaml('  a:\n    ref: file:secrets.yaml#db.user\n    mode: "0999"\n') },
      code: 'SK_ERR_MODE_INVALID',
      exit: 2,
      mentions: 'secrets.a.mode',
    },
    {
      name: 'path escape',
      files: { 'sidekey.yaml': specYaml('  a:\n    ref: file:secrets.yaml#db.user\n    file: ../escape\n') },
      code: 'SK_ERR_PATH_INVALID',
      exit: 2,
      mentions: 'secrets.a.file',
    },
    {
      name: 'unreadable source (not YAML)',
      files: {
        'broken.yaml': `db: [${CANARY}\n`,
        'sidekey.yaml': specYaml('  a:\n    ref: file:broken.yaml#db\n'),
      },
      code: 'SK_ERR_SOURCE_UNREADABLE',
      exit: 1,
      mentions: 'file:broken.yaml#db',
    },
    {
      name: 'unreadable source (not a file)',
      files: { 'sidekey.yaml': specYaml('  a:\n    ref: file:/dev/null\n') },
      code: 'SK_ERR_SOURCE_UNREADABLE',
      exit: 1,
      mentions: 'file:/dev/null',
    },
    {
      name: 'missing spec file',
      files: {},
      code: 'SK_ERR_SPEC_PARSE',
      exit: 2,
      mentions: 'sidekey.yaml',
    },
  ];

  for (const c of cases) {
    test(c.name, async () => {
      const dir = tempDir({ 'secrets.yaml': good, ...c.files });
      c.prepare?.(dir);
      const r = await runCli(['dev'], { cwd: dir, timeoutMs: 20_000 });
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(c.exit);
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^${c.code}: `));
      expect(lines[0]).toContain(c.mentions);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout).toBe('');
      // No partial file set.
      const out = path.join(dir, 'out');
      expect(existsSync(out) ? readdirSync(out).filter((f) => !f.startsWith('.sidekey')) : []).toEqual([]);
    });
  }

  test('an output directory that cannot be written', async () => {
    const dir = tempDir({ 'secrets.yaml': good, 'sidekey.yaml': specYaml(BASIC_SECRETS) });
    // A regular file where the output directory should be (root ignores permission bits).
    writeFileSync(path.join(dir, 'out'), 'not a directory');
    chmodSync(path.join(dir, 'out'), 0o444);
    const r = await runCli(['dev'], { cwd: dir });
    expect(r.code).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^SK_ERR_WRITE: /);
  });
});
