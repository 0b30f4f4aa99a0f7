import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isSkError, type SkError } from '../../src/errors.js';
import { loadSpecFile, loadSpecJson } from '../../src/load.js';
import { defaultRegistry } from '../../src/providers/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sidekey-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const registry = defaultRegistry();

function sk(fn: () => unknown): SkError {
  try {
    fn();
  } catch (e) {
    if (isSkError(e)) return e;
    throw e;
  }
  throw new Error('expected an SkError');
}

function write(name: string, text: string): string {
  const p = path.join(dir, name);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, text);
  return p;
}

const head = 'apiVersion: sidekey.io/v1\nkind: SecretSpec\n';

describe('loadSpecFile', () => {
  it('resolves relative output dir and file: base dir against the spec file directory', () => {
    const p = write(
      'proj/sidekey.yaml',
      `${head}output: { dir: ./out }\nsecrets:\n  db:\n    ref: file:secrets.yaml#db.password\n    template: "pw={{ value }}"\n`,
    );
    const spec = loadSpecFile(p, { registry });
    expect(spec.output.dir).toBe(path.join(dir, 'proj', 'out'));
    expect(spec.backends.file?.baseDir).toBe(path.join(dir, 'proj'));
    expect(spec.secrets[0]?.ref.key).toBe('db.password');
    expect(Object.isFrozen(spec.secrets[0])).toBe(true);
  });

  it('a missing or unreadable file is SK_ERR_SPEC_PARSE naming the path', () => {
    const missing = path.join(dir, 'nope.yaml');
    const e = sk(() => loadSpecFile(missing, { registry }));
    expect(e.code).toBe('SK_ERR_SPEC_PARSE');
    expect(e.message).toBe(`spec file ${missing} does not exist`);
    const d = path.join(dir, 'a-directory');
    mkdirSync(d);
    const e2 = sk(() => loadSpecFile(d, { registry }));
    expect(e2.code).toBe('SK_ERR_SPEC_PARSE');
    expect(e2.message).toContain(d);
    expect(e2.message).toContain('EISDIR');
  });

  it('refuses an unknown provider, naming the field and the known ones', () => {
    const p = write('unknown.yaml', `${head}secrets:\n  db:\n    ref: nosuch:x\n`);
    const e = sk(() => loadSpecFile(p, { registry }));
    expect(e.code).toBe('SK_ERR_PROVIDER_UNKNOWN');
    expect(e.message).toContain(`${p}:secrets.db.ref`);
    expect(e.message).toContain('file');
  });

  it("validates refs with the provider's own rules", () => {
    const p = write('badopt.yaml', `${head}secrets:\n  db:\n    ref: file:x.yaml?parse=toml\n`);
    const e = sk(() => loadSpecFile(p, { registry }));
    expect(e.code).toBe('SK_ERR_REF_SYNTAX');
    expect(e.message).toContain(`${p}:secrets.db.ref`);
  });

  it('compiles templates at load time, naming the field and the template line', () => {
    const p = write(
      'badtpl.yaml',
      `${head}secrets:\n  db:\n    ref: file:x.yaml\n    template: "a\\n{% if x %}"\n`,
    );
    const e = sk(() => loadSpecFile(p, { registry }));
    expect(e.code).toBe('SK_ERR_TEMPLATE_SYNTAX');
    expect(e.message).toMatch(
      new RegExp(`^${p.replace(/[.]/g, '\\.')}:secrets\\.db\\.template: template line 2: `),
    );
  });

  it('accepts a source label instead of the path', () => {
    const p = write('label.yaml', `${head}secrets:\n  db:\n    ref: nosuch:x\n`);
    expect(sk(() => loadSpecFile(p, { registry, source: 'sidekey.yaml' })).message).toMatch(
      /^sidekey\.yaml:/,
    );
  });
});

describe('loadSpecJson', () => {
  const spec = {
    apiVersion: 'sidekey.io/v1',
    kind: 'SecretSpec',
    output: { dir: '/run/sidekey' },
    secrets: { db: { ref: 'file:/etc/creds.yaml#password', format: 'env' } },
  };

  it('resolves a SIDEKEY_SPEC document', () => {
    const r = loadSpecJson(JSON.stringify(spec), { registry });
    expect(r.output.dir).toBe('/run/sidekey');
    expect(r.secrets.map((s) => [s.name, s.format, s.ref.locator])).toEqual([
      ['db', 'env', '/etc/creds.yaml'],
    ]);
  });

  it('bad JSON is SK_ERR_SPEC_PARSE naming the source, without quoting the input', () => {
    const e = sk(() => loadSpecJson('{"apiVersion": SKCANARY-7f3c9e2a-do-not-print', { registry }));
    expect(e.code).toBe('SK_ERR_SPEC_PARSE');
    expect(e.message).toMatch(/^SIDEKEY_SPEC: not valid JSON/);
    expect(e.message).not.toContain('SKCANARY');
  });

  it('errors are located in SIDEKEY_SPEC', () => {
    const bad = { ...spec, secrets: { db: { ref: 'file:x', template: '{{ x | nosuch }}' } } };
    const e = sk(() => loadSpecJson(JSON.stringify(bad), { registry }));
    expect(e.code).toBe('SK_ERR_TEMPLATE_SYNTAX');
    expect(e.message).toMatch(
      /^SIDEKEY_SPEC:secrets\.db\.template: template line 1: undefined filter: nosuch$/,
    );
  });
});
