import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_NODE_OPTION } from '../../sidecar/v8-flags.js';
import { CANARY } from '../helpers/cli.js';

/**
 * The container image without a Docker engine: the Dockerfile is checked by hadolint (installed by
 * scripts/tools/integration.d/40-helm.sh), and `scripts/image-rootfs.sh` (what the image's final stage
 * copies, built like the Dockerfile's build stage) is run for real and its output executed.
 */

const TOOLS = process.env.SIDEKEY_TOOLS ?? path.join(os.homedir(), '.cache', 'sidekey-tools');
const HADOLINT = path.join(TOOLS, 'bin', 'hadolint');
const REPO = path.resolve(import.meta.dirname, '../..');

let tmp: string;
let rootfs: string;
let build: { status: number | null; stdout: string; stderr: string };

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'sk-image-'));
  rootfs = path.join(tmp, 'rootfs');
  // Asynchronously: a build of minutes must not block the test worker (vitest's RPC times out).
  build = await new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(REPO, 'scripts', 'image-rootfs.sh'), '--node', rootfs], {
      cwd: REPO,
      env: { ...process.env, TMPDIR: tmp },
      timeout: 540_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}, 600_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function walk(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p, base) : [path.relative(base, p)];
  });
}

describe('container image', () => {
  it('the Dockerfile passes hadolint', () => {
    expect(existsSync(HADOLINT), `${HADOLINT} missing: run scripts/tools/ensure.sh integration`).toBe(true);
    const r = spawnSync(HADOLINT, ['--failure-threshold', 'info', 'Dockerfile'], {
      cwd: REPO,
      encoding: 'utf8',
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // The linter really looks: a Dockerfile with known mistakes fails.
    const bad = path.join(tmp, 'Dockerfile.bad');
    writeFileSync(bad, 'FROM node:latest\nRUN cd /app && npm install\nUSER root\n');
    const b = spawnSync(HADOLINT, [bad], { encoding: 'utf8' });
    expect(b.status).not.toBe(0);
    expect(b.stdout).toMatch(/DL3007|DL3003/);
  });

  it('Dockerfile: multi-stage, non-root numeric user, sidekey as the entry point, copies only the rootfs', () => {
    const df = readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
    expect(df.match(/^FROM /gm)).toHaveLength(2);
    expect(df).toMatch(/^USER 65532:65532$/m);
    expect(df).toMatch(/^ENTRYPOINT \["sidekey"\]$/m);
    expect(df).toContain('npm ci --ignore-scripts');
    const copies = df.match(/^COPY .*$/gm) ?? [];
    expect(copies.at(-1)).toBe('COPY --from=build /rootfs/ /');
  });

  it('image:rootfs builds a self-contained rootfs: bundle, entry point, PATH link, the pinned Node, nothing else', () => {
    expect(build.status, `${build.stderr}`).toBe(0);
    const files = walk(rootfs).sort();
    expect(files).toContain('app/package.json');
    expect(files).toContain('app/bin/sidekey.js');
    expect(files).toContain('app/dist/sidekey.js');
    expect(files).toContain('usr/local/bin/sidekey');
    for (const f of files) {
      expect(f, 'only the app and its PATH link').toMatch(
        /^(app\/(package\.json|bin\/sidekey\.js|dist\/[\w-]+\.js)|usr\/local\/bin\/(sidekey|node)|usr\/local\/share\/doc\/node\/LICENSE)$/,
      );
      const st = lstatSync(path.join(rootfs, f));
      if (!st.isSymbolicLink()) expect(st.mode & 0o022, `${f} not group/world-writable`).toBe(0);
    }
    expect(readlinkSync(path.join(rootfs, 'usr/local/bin/sidekey'))).toBe('/app/bin/sidekey.js');
    // The image's Node is the pinned LTS release, and the entry point names it (no /usr/bin/env there).
    const pin = readFileSync(path.join(REPO, '.node-version'), 'utf8').trim();
    const v = spawnSync(path.join(rootfs, 'usr/local/bin/node'), ['--version'], { encoding: 'utf8' });
    expect(v.stdout.trim()).toBe(`v${pin}`);
    expect(readFileSync(path.join(rootfs, 'app/bin/sidekey.js'), 'utf8').split('\n')[0]).toBe(
      `#!/usr/local/bin/node ${IMAGE_NODE_OPTION}`,
    );
    const pkg = JSON.parse(readFileSync(path.join(rootfs, 'app/package.json'), 'utf8'));
    expect(pkg).toMatchObject({ name: 'sidekey', type: 'module' });
    expect(pkg.dependencies).toBeUndefined();
    // The manifest on stdout lists every entry with mode and sha256.
    expect(String(build.stdout).trim().split('\n')).toHaveLength(files.length);
    const size = files.reduce((n, f) => n + lstatSync(path.join(rootfs, f)).size, 0);
    // The app (bundle) and the Node binary: docs/install.md states the size.
    const app = files
      .filter((f) => !f.includes('/node'))
      .reduce((n, f) => n + lstatSync(path.join(rootfs, f)).size, 0);
    expect(app).toBeLessThan(64 * 1024 * 1024);
    expect(size).toBeLessThan(256 * 1024 * 1024);
  });

  it('the rootfs runs `sidekey agent --once` on its own Node, started as its #! line says, with no node_modules anywhere above it', () => {
    expect(build.status).toBe(0);
    const work = path.join(tmp, 'agent');
    const out = path.join(work, 'out');
    rmSync(work, { recursive: true, force: true });
    spawnSync('mkdir', ['-p', work]);
    writeFileSync(path.join(work, 'secrets.yaml'), `db:\n  password: ${CANARY}\n`);
    writeFileSync(
      path.join(work, 'sidekey.yaml'),
      [
        'apiVersion: sidekey.io/v1',
        'kind: SecretSpec',
        'output:',
        `  dir: ${out}`,
        'secrets:',
        '  db-password:',
        '    ref: file:secrets.yaml#db.password',
        '',
      ].join('\n'),
    );
    // What the kernel runs for `sidekey` in the image: the interpreter and its one option from line 1.
    const entry = path.join(rootfs, 'app/bin/sidekey.js');
    const [interp, ...opt] = readFileSync(entry, 'utf8').split('\n')[0]!.slice(2).split(' ');
    expect(interp).toBe('/usr/local/bin/node');
    const r = spawnSync(
      path.join(rootfs, interp!),
      [...opt, entry, 'agent', '--once', '-c', 'sidekey.yaml'],
      {
        cwd: work,
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '', HOME: work },
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(path.join(out, 'db-password'), 'utf8')).toBe(CANARY);
    expect(r.stdout + r.stderr).not.toContain(CANARY);
  });
});
