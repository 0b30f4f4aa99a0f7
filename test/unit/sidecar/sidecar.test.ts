import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { exitFilePath, readyMarker } from '../../../sidecar/agent.ts';
import {
  errorLine,
  exitCodeFor,
  loadCommandSpec,
  providersInText,
  withOutputDir,
} from '../../../sidecar/common.ts';
import { describeFiles } from '../../../sidecar/dev.ts';
import { defaultEnvName, fileEnv } from '../../../sidecar/run.ts';
import { SkError } from '../../../src/errors.ts';
import { resolveSpec } from '../../../src/spec.ts';

const spec = resolveSpec(
  {
    apiVersion: 'sidekey.io/v1',
    kind: 'SecretSpec',
    output: { dir: '/out' },
    agent: { exitFile: 'done' },
    secrets: {
      'db-password': { ref: 'file:s.yaml#db.password', env: 'DB_PASSWORD', mode: '0400' },
      'tls.crt': { ref: 'file:tls/', file: 'tls/cert.pem', format: 'raw' },
      'api-token': { ref: 'vault:secret/data/api#token', template: '{{ value }}' },
    },
  },
  { baseDir: '/work/app' },
);

describe('sidekey run environment', () => {
  test('SIDEKEY_<NAME>_FILE: uppercased, - and . become _', () => {
    expect(defaultEnvName('tls.crt')).toBe('SIDEKEY_TLS_CRT');
    expect(defaultEnvName('api-token')).toBe('SIDEKEY_API_TOKEN');
  });

  test('<ENV>_FILE for secrets with env, SIDEKEY_<NAME>_FILE otherwise, and SIDEKEY_DIR', () => {
    expect(fileEnv(spec)).toEqual({
      SIDEKEY_DIR: '/out',
      DB_PASSWORD_FILE: '/out/db-password',
      SIDEKEY_TLS_CRT_FILE: '/out/tls/cert.pem',
      SIDEKEY_API_TOKEN_FILE: '/out/api-token',
    });
  });
});

describe('shared command plumbing', () => {
  test('providersInText finds the provider after each ref: key (YAML and JSON)', () => {
    const yaml =
      'secrets:\n  a:\n    ref: file:x.yaml#k\n  b: { ref: "vault:secret/data/b" }\n  c:\n    ref:  \'aws:prod/c\'\n';
    expect(providersInText(yaml)).toEqual(['file', 'vault', 'aws']);
    expect(providersInText(JSON.stringify({ secrets: { a: { ref: 'k8s:db#password' } } }))).toEqual(['k8s']);
    expect(providersInText('secrets: {}')).toEqual([]);
  });

  test('a provider the scan missed still loads: the spec is retried with every provider', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-unit-'));
    try {
      // The ref comes through a YAML alias, which the pattern scan does not see.
      const file = path.join(dir, 'sidekey.yaml');
      writeFileSync(
        file,
        'apiVersion: sidekey.io/v1\nkind: SecretSpec\nx-ref: &r vault:secret/data/app#password\nsecrets:\n  a: { ref: *r }\n',
      );
      await expect(loadCommandSpec({ config: file })).rejects.toThrow(/unknown field/);
      writeFileSync(
        file,
        'apiVersion: sidekey.io/v1\nkind: SecretSpec\nsecrets:\n  a:\n    ref: &r vault:secret/data/app#password\n  b:\n    ref: *r\n',
      );
      const { registry } = await loadCommandSpec({ config: file });
      expect(registry.names()).toContain('vault');
      writeFileSync(file, 'apiVersion: sidekey.io/v1\nkind: SecretSpec\nsecrets:\n  a:\n    ref: nope:x\n');
      await expect(loadCommandSpec({ config: file })).rejects.toThrow(
        /unknown provider \(known: aws, azure, file, gcp, k8s, vault\)/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('errorLine is one SK_ERR_ line; exit 2 for input, 1 otherwise', () => {
    const input = new SkError(
      'SK_ERR_MODE_INVALID',
      'sidekey.yaml:secrets.a.mode: "0999" is not\nan octal mode',
    );
    expect(errorLine(input)).toBe(
      'SK_ERR_MODE_INVALID: sidekey.yaml:secrets.a.mode: "0999" is not an octal mode',
    );
    expect(exitCodeFor(input)).toBe(2);
    expect(exitCodeFor(new SkError('SK_ERR_SOURCE_NOT_FOUND', 'x'))).toBe(1);
    expect(errorLine(new Error('boom\n    at x'))).toBe('SK_ERR_INTERNAL: boom');
    expect(exitCodeFor(new Error('boom'))).toBe(1);
  });

  test('withOutputDir returns a frozen copy', () => {
    const s = withOutputDir(spec, '/elsewhere');
    expect(s.output.dir).toBe('/elsewhere');
    expect(spec.output.dir).toBe('/out');
    expect(Object.isFrozen(s) && Object.isFrozen(s.output)).toBe(true);
    expect(s.secrets).toBe(spec.secrets);
  });
});

describe('agent paths', () => {
  test('ready marker is ..data in the output dir; exitFile resolves against the spec dir', () => {
    expect(readyMarker(spec)).toBe('/out/..data');
    expect(exitFilePath(spec)).toBe('/work/app/done');
  });
});

describe('dev output', () => {
  test('names files, modes, formats and env vars, never values', () => {
    const lines = describeFiles(spec);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^ {2}wrote {2}db-password +\(mode 0400, raw, \$DB_PASSWORD_FILE\)$/);
    expect(lines[1]).toMatch(/tls\/cert\.pem +\(mode 0440, raw\)/);
    expect(lines[2]).toMatch(/api-token +\(mode 0440, template\)/);
  });
});

describe('agent --probe', () => {
  test('reads output.dir the way the spec loader resolves it', async () => {
    const { DEFAULT_OUTPUT_DIR, probeOutputDir } = await import('../../../sidecar/probe.ts');
    const { DEFAULTS } = await import('../../../src/spec.ts');
    expect(DEFAULT_OUTPUT_DIR).toBe(DEFAULTS.outputDir);
    const env = (doc: unknown) => ({ SIDEKEY_SPEC: JSON.stringify(doc) });
    expect(await probeOutputDir({}, env({ output: { dir: '/run/x' } }))).toBe('/run/x');
    expect(await probeOutputDir({}, env({ secrets: {} }))).toBe('/run/sidekey');
    expect(await probeOutputDir({}, env({ output: { dir: 'rel' } }))).toBe(`${process.cwd()}/rel`);
    await expect(probeOutputDir({}, {})).rejects.toThrow(/no spec/);
    await expect(probeOutputDir({}, { SIDEKEY_SPEC: '{' })).rejects.toThrow();
  });
});
