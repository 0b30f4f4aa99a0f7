import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The supported runtime: one pin (.node-version) that the image build (scripts/image-rootfs.sh --node,
 * through scripts/tools/node.sh) and CI (.ci/run) read; what cannot read a file states it and is checked
 * here against the pin.
 */
const REPO = path.resolve(import.meta.dirname, '../..');
const read = (f: string) => readFileSync(path.join(REPO, f), 'utf8');
const pin = read('.node-version').trim();
const major = Number(pin.split('.')[0]);

describe('Node.js runtime pin', () => {
  it('.node-version is one exact version of an LTS line (even major, 24 or later)', () => {
    expect(pin).toMatch(/^\d+\.\d+\.\d+$/);
    expect(major % 2).toBe(0);
    expect(major).toBeGreaterThanOrEqual(24);
  });

  it('the image puts the pinned Node binary in the rootfs, on a base without a shell', () => {
    const df = read('Dockerfile');
    expect(df).toContain('scripts/image-rootfs.sh --node --in-place /rootfs');
    // The build stage's Node only runs npm and esbuild; its line is the pin's.
    expect(df).toMatch(new RegExp(`^ARG BUILD_IMAGE=node:${major}-[a-z]+-slim$`, 'm'));
    expect(df).toMatch(/^ARG BASE_IMAGE=gcr\.io\/distroless\/cc-debian\d+:nonroot$/m);
    // The final stage runs nothing at build time (there is no shell to run it with).
    const final = df.slice(df.lastIndexOf('\nFROM '));
    expect(final).toMatch(/^FROM \$\{BASE_IMAGE\}$/m);
    expect(final).not.toMatch(/^RUN /m);
    for (const label of ['version', 'revision', 'source']) {
      expect(df).toContain(`org.opencontainers.image.${label}=`);
    }
    const version = JSON.parse(read('package.json')).version as string;
    expect(df).toMatch(new RegExp(`^ARG VERSION=${version.replaceAll('.', '\\.')}$`, 'm'));
    const ignore = read('.dockerignore');
    expect(ignore).toContain('!.node-version');
    expect(ignore).toContain('!scripts/tools/node.sh');
  });

  it('CI installs and runs on the pinned Node; @types/node is its line', () => {
    expect(read('.ci/run')).toContain('bash scripts/tools/node.sh');
    const pkg = JSON.parse(read('package.json'));
    expect(pkg.devDependencies['@types/node']).toMatch(new RegExp(`^\\^${major}\\.`));
    // Local mode (the README's commands) still works on the machine's Node 20.
    expect(pkg.engines.node).toBe('>=20');
  });

  it.runIf(process.env.CI === 'true')('this test run is on the pinned Node (CI)', () => {
    expect(process.version).toBe(`v${pin}`);
  });
});
