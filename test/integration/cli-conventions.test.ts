import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { mutatePod } from '../../webhook/pipeline.js';
import { BIN, REPO_ROOT, runCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/fixtures.ts';
import { testContext } from '../unit/webhook/helpers.ts';
import { emulatorKubeconfig, K8sApiEmulator } from './providers/k8s-api-emulator.ts';

/**
 * The CLI's day-two conventions, on the built CLI as a process: `version`, shell completion, one
 * meaning of `-o` (a format; files and directories have their own flags, old spellings still work),
 * `-o json|yaml` round-trips, colour only on a terminal and never with NO_COLOR, `init` and the
 * missing-spec hint, and `check-webhook` against the API emulator's dry-run pod creation.
 */

const PKG = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
const ESC = '\x1b[';

/** Every command and its `--help`. */
async function helpOf(cmd: string): Promise<string> {
  const r = await runCli([cmd, '--help']);
  expect(r.code, `${cmd} --help`).toBe(0);
  return r.stdout;
}

describe('sidekey version', () => {
  it('prints version, commit and Node runtime; -o json and -o yaml carry the same document', async () => {
    const table = await runCli(['version']);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^sidekey ${PKG.version.replace(/\./g, '\\.')}\n`));
    const json = await runCli(['version', '-o', 'json']);
    const yaml = await runCli(['version', '-o', 'yaml']);
    const doc = JSON.parse(json.stdout);
    expect(YAML.parse(yaml.stdout)).toEqual(doc);
    expect(doc).toEqual({
      version: PKG.version,
      commit: expect.stringMatching(/^([0-9a-f]{7,40}|unknown)$/),
      node: process.version,
      platform: `${process.platform}/${process.arch}`,
    });
    expect(table.stdout).toContain(`commit:   ${doc.commit}`);
    expect(table.stdout).toContain(`node:     ${process.version}`);
    // Built from this checkout: the commit is its HEAD.
    const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' });
    if (head.status === 0) expect(doc.commit).toBe(head.stdout.trim());
    // --version stays the bare version (scripts read it).
    expect((await runCli(['--version'])).stdout).toBe(`${PKG.version}\n`);
  });

  it('a bad -o is a usage error listing the formats', async () => {
    const r = await runCli(['version', '-o', 'xml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('SK_ERR_CLI_USAGE: -o xml: use table, json, yaml\n');
  });
});

describe('shell completion', () => {
  const commands = [
    'init',
    'dev',
    'run',
    'agent',
    'status',
    'webhook',
    'check-webhook',
    'inject',
    'explain',
    'scan',
    'migrate',
    'schema',
    'version',
    'completion',
  ];

  /** What bash completes for the words typed so far (the last one being completed), with the script sourced. */
  function bashComplete(script: string, words: string[]): string[] {
    const dir = tempDir({ 'sidekey.bash': script, 'notes.txt': '' });
    const quoted = words.map((w) => `'${w}'`).join(' ');
    const r = spawnSync(
      'bash',
      [
        '-c',
        `source sidekey.bash; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _sidekey; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ],
      { cwd: dir, encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    return r.stdout.split('\n').filter(Boolean).sort();
  }

  it('bash: commands, options per command, -o formats, --fail-on levels, files for <file> options', async () => {
    const r = await runCli(['completion', 'bash']);
    expect(r.code, r.stderr).toBe(0);
    const script = r.stdout;
    expect(spawnSync('bash', ['-n'], { input: script }).status).toBe(0);
    expect(script).toContain('complete -o default -F _sidekey sidekey');
    expect(bashComplete(script, ['sidekey', ''])).toEqual([...commands, '--help', '--version'].sort());
    expect(bashComplete(script, ['sidekey', 'ch'])).toEqual(['check-webhook']);
    expect(bashComplete(script, ['sidekey', 'scan', '-o', ''])).toEqual(['json', 'table', 'yaml']);
    expect(bashComplete(script, ['sidekey', 'scan', '--fail-on', ''])).toEqual(['high', 'low', 'medium']);
    expect(bashComplete(script, ['sidekey', 'inject', '-o', ''])).toEqual(['json', 'yaml']);
    expect(bashComplete(script, ['sidekey', 'scan', '--ch'])).toEqual(['--chunk-size']);
    expect(bashComplete(script, ['sidekey', 'dev', '-c', 'no'])).toEqual(['notes.txt']);
    // Deprecated aliases are not offered.
    const devOpts = bashComplete(script, ['sidekey', 'dev', '-']);
    expect(devOpts).toContain('--output-dir');
    expect(devOpts).not.toContain('--output');
    expect(devOpts).not.toContain('-o');
  });

  it('zsh and fish: every command, and the same values for -o', async () => {
    const zsh = (await runCli(['completion', 'zsh'])).stdout;
    expect(zsh.startsWith('#compdef sidekey\n')).toBe(true);
    const fish = (await runCli(['completion', 'fish'])).stdout;
    for (const c of commands) {
      expect(zsh).toMatch(new RegExp(`^    '${c}:`, 'm'));
      expect(zsh).toMatch(new RegExp(`^    ${c}\\)$`, 'm'));
      expect(fish).toContain(`complete -c sidekey -n __fish_use_subcommand -a ${c} -d '`);
    }
    expect(zsh).toContain("'--output[table, json or yaml]:value:(table json yaml)'");
    expect(zsh).toContain("'--file[manifest file");
    expect(zsh).toContain('compdef _sidekey sidekey');
    expect(fish).toContain(
      "complete -c sidekey -n '__fish_seen_subcommand_from scan' -s o -l output -x -a 'table json yaml' -d 'table, json or yaml'",
    );
    expect(fish).toContain("complete -c sidekey -n '__fish_seen_subcommand_from dev' -s c -l config -r -F");
    // Parse them with the real shells where installed.
    for (const [shell, text] of [
      ['zsh', zsh],
      ['fish', fish],
    ] as const) {
      const which = spawnSync('sh', ['-c', `command -v ${shell}`], { encoding: 'utf8' });
      if (which.status !== 0) continue;
      const check = spawnSync(shell, ['-n'], { input: text, encoding: 'utf8' });
      expect(check.status, `${shell} -n: ${check.stderr}`).toBe(0);
    }
  });

  it('an unknown shell is a usage error', async () => {
    const r = await runCli(['completion', 'powershell']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SK_ERR_CLI_USAGE: completion powershell: use bash, zsh or fish');
  });
});

describe('-o means the output format in every command', () => {
  it('wherever -o exists, it takes a <format>; files and directories have their own flags', async () => {
    const root = (await runCli(['--help'])).stdout;
    const names = [...root.matchAll(/^ {2}([a-z-]+)(?: \[options\]| <shell>)?\s{2,}/gm)].map((m) => m[1]!);
    expect(names).toEqual(expect.arrayContaining(['scan', 'status', 'inject', 'version', 'check-webhook']));
    let withOutput = 0;
    for (const n of names.filter((x) => x !== 'help')) {
      const help = await helpOf(n);
      const line = /^ {2}-o, --output (\S+)/m.exec(help);
      if (line) {
        withOutput++;
        expect(line[1], n).toBe('<format>');
      }
      expect(help, n).not.toMatch(/--output <(file|dir)>/);
    }
    expect(withOutput).toBeGreaterThanOrEqual(5);
    expect(await helpOf('migrate')).toContain('--output-file <file>');
    expect(await helpOf('dev')).toContain('--output-dir <dir>');
    expect(await helpOf('run')).toContain('--output-dir <dir>');
  });

  it('the old -o <file>/<dir> spellings still work, with a deprecation warning', async () => {
    const d = tempDir();
    const out = path.join(d, 'migrated.yaml');
    const r = await runCli(['migrate', '-f', 'test/fixtures/migrate/api.yaml', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out, 'utf8')).toContain('sidekey.io/inject');
    expect(r.stderr).toContain(
      'warn: -o/--output <file> is deprecated here and will be removed: use --output-file',
    );

    const spec = path.join(d, 'sidekey.yaml');
    writeFileSync(path.join(d, 'secrets.local.yaml'), 'db:\n  password: dev-only\n');
    expect((await runCli(['init', '-c', spec])).code).toBe(0);
    const dir = path.join(d, 'out-old');
    const run = await runCli([
      'run',
      '-c',
      spec,
      '-o',
      dir,
      '--',
      process.execPath,
      '-e',
      'console.log(process.env.SIDEKEY_DIR)',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(dir);
    expect(run.stderr).toContain('use --output-dir');
  });

  it('inject -o json is the same objects as the default YAML; --patch with -o is refused', async () => {
    const file = path.join(tempDir(), 'pods.yaml');
    writeFileSync(
      file,
      `apiVersion: v1\nkind: Pod\nmetadata:\n  name: plain\nspec:\n  containers:\n    - name: app\n      image: app:1\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: opted-in\n  annotations:\n    sidekey.io/inject: "true"\n    sidekey.io/secret-db: file:/etc/db\nspec:\n  containers:\n    - name: app\n      image: app:1\n`,
    );
    const yaml = await runCli(['inject', '-f', file, '--kube-version', '1.31']);
    const json = await runCli(['inject', '-f', file, '--kube-version', '1.31', '-o', 'json']);
    expect(yaml.code, yaml.stderr).toBe(0);
    expect(json.code, json.stderr).toBe(0);
    const list = JSON.parse(json.stdout);
    expect(list).toMatchObject({ apiVersion: 'v1', kind: 'List' });
    expect(list.items).toEqual(YAML.parseAllDocuments(yaml.stdout).map((d) => d.toJS()));
    expect(list.items.at(-1).metadata.annotations['sidekey.io/status']).toBe('injected');
    const both = await runCli(['inject', '-f', file, '--patch', '-o', 'json']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('SK_ERR_CLI_USAGE: -o and --patch exclude each other');
  });
});

describe('colour: only on a terminal, never with NO_COLOR', () => {
  /** Run under a pseudo-terminal (util-linux script), so stdout is a TTY. */
  function onTty(args: string[], env: Record<string, string>): string {
    const cmd = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' ');
    const e = { ...process.env, TERM: 'xterm', ...env } as Record<string, string>;
    if (!('NO_COLOR' in env)) delete e.NO_COLOR;
    if (!('FORCE_COLOR' in env)) delete e.FORCE_COLOR;
    return execFileSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: e, cwd: REPO_ROOT });
  }

  it('help is bold on a terminal, plain with NO_COLOR or when piped', async () => {
    expect(onTty(['--help'], {})).toContain(`${ESC}1mUsage:`);
    expect(onTty(['--help'], { NO_COLOR: '1' })).not.toContain(ESC);
    expect(onTty(['--help'], { TERM: 'dumb' })).not.toContain(ESC);
    const piped = await runCli(['--help'], { env: { NO_COLOR: '' } });
    expect(piped.stdout).not.toContain(ESC);
    expect(piped.stdout).toContain('Examples:');
  });

  it('the scan table colours confidence on a terminal only; JSON never', async () => {
    const args = ['scan', '-f', 'test/fixtures/migrate/literals.yaml'];
    const tty = onTty(args, {});
    expect(tty).toContain(`${ESC}31mhigh${ESC}39m`);
    expect(onTty(args, { NO_COLOR: '1' })).not.toContain(ESC);
    expect(onTty([...args, '-o', 'json'], {})).not.toContain(ESC);
    const piped = await runCli(args, { env: { NO_COLOR: '' } });
    expect(piped.stdout).not.toContain(ESC);
    // Same table once the codes are removed: colour never shifts the columns.
    const plain = tty.replace(new RegExp(`${ESC.replace('[', '\\[')}\\d+m`, 'g'), '');
    expect(plain.replace(/\r\n/g, '\n')).toBe(piped.stdout);
  });
});

describe('init, and dev/run without a spec', () => {
  it('dev without a sidekey.yaml says how to get one', async () => {
    const d = tempDir();
    const r = await runCli(['dev'], { cwd: d });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'SK_ERR_SPEC_PARSE: sidekey.yaml: no such spec file: pass -c <file>, or run `sidekey init` to write a starter sidekey.yaml\n',
    );
    const run = await runCli(['run', '-c', 'app.yaml', '--', 'true'], { cwd: d });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('app.yaml: no such spec file: pass -c <file>, or run `sidekey init`');
  });

  it('init writes a spec that run renders at once, and never overwrites', async () => {
    const d = tempDir();
    const init = await runCli(['init'], { cwd: d });
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain('wrote sidekey.yaml and secrets.local.yaml');
    expect(existsSync(path.join(d, 'secrets.local.yaml'))).toBe(true);
    const run = await runCli(
      [
        'run',
        '--',
        process.execPath,
        '-e',
        "process.stdout.write(require('fs').readFileSync(process.env.DB_PASSWORD_FILE, 'utf8'))",
      ],
      { cwd: d },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('change-me');
    const again = await runCli(['init'], { cwd: d });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('SK_ERR_CLI_USAGE: sidekey.yaml exists: pass --force to overwrite it');
    writeFileSync(path.join(d, 'secrets.local.yaml'), 'db:\n  password: mine\n');
    expect((await runCli(['init', '--force'], { cwd: d })).stdout).toBe(
      'wrote sidekey.yaml\nnext: sidekey dev   (or: sidekey run -- <your command>)\n',
    );
    expect(readFileSync(path.join(d, 'secrets.local.yaml'), 'utf8')).toContain('mine');
    // The starter validates against the published schema's rules (the real loader).
    const schema = await runCli(['schema']);
    expect(JSON.parse(schema.stdout).properties.secrets).toBeDefined();
  });
});

describe('sidekey check-webhook (API emulator: dry-run pod creation)', () => {
  const api = new K8sApiEmulator();
  let kubeconfig = '';
  beforeAll(async () => {
    api.tokens.set('admin-token', '*');
    const server = await api.listen();
    kubeconfig = emulatorKubeconfig(server, 'shop');
  });
  afterAll(async () => {
    await api.close();
  });

  it('ok when the pod comes back injected (the real pipeline as the admission webhook)', async () => {
    const ctx = testContext({}, { nativeSidecars: true });
    api.admit = (pod, namespace) => {
      const out = mutatePod({ operation: 'CREATE', namespace, pod }, ctx);
      if (out.kind === 'invalid') return { denied: `${out.error.code}: ${out.error.message}` };
      return out.kind === 'inject' ? (out.pod as Record<string, unknown>) : pod;
    };
    const r = await runCli(['check-webhook'], { env: { KUBECONFIG: kubeconfig } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      'ok: the webhook injected a dry-run pod in namespace shop (agent sidekey-agent, native sidecar, image ghcr.io/sidekey/sidekey:test)\n',
    );
    const json = await runCli(['check-webhook', '-n', 'payments', '-o', 'json'], {
      env: { KUBECONFIG: kubeconfig },
    });
    const yaml = await runCli(['check-webhook', '-n', 'payments', '-o', 'yaml'], {
      env: { KUBECONFIG: kubeconfig },
    });
    const doc = JSON.parse(json.stdout);
    expect(YAML.parse(yaml.stdout)).toEqual(doc);
    expect(doc).toMatchObject({
      namespace: 'payments',
      injected: true,
      agent: { name: 'sidekey-agent', nativeSidecar: true },
    });
  });

  it('fails when the pod comes back without the agent, or admission refuses it', async () => {
    api.admit = undefined;
    const plain = await runCli(['check-webhook'], { env: { KUBECONFIG: kubeconfig } });
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(
      /^SK_ERR_WEBHOOK_CHECK: the dry-run pod in namespace shop was admitted without the agent/,
    );
    api.admit = () => ({ denied: 'SK_ERR_ANNOTATION_INVALID: sidekey.io/mode: bad' });
    const denied = await runCli(['check-webhook'], { env: { KUBECONFIG: kubeconfig } });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toBe(
      'SK_ERR_WEBHOOK_CHECK: dry-run create pods in namespace shop: HTTP 400: admission webhook "inject.sidekey.io" denied the request: SK_ERR_ANNOTATION_INVALID: sidekey.io/mode: bad\n',
    );
  });
});
