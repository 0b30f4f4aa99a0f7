import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { isSkError, type SkError } from '../../src/errors.js';
import { DEFAULTS, loadSpec, resolveSpec, specJsonSchema } from '../../src/spec.js';

const base = { apiVersion: 'sidekey.io/v1', kind: 'SecretSpec' };
const spec = (over: Record<string, unknown>) => ({ ...base, secrets: {}, ...over });
function sk(fn: () => unknown): SkError {
  try {
    fn();
  } catch (e) {
    if (isSkError(e)) return e;
    throw e;
  }
  throw new Error('expected an SkError');
}

describe('resolveSpec', () => {
  it('fills defaults and freezes the result deeply', () => {
    const r = resolveSpec(spec({ secrets: { db: { ref: 'vault:secret/data/db#password' } } }), {
      baseDir: '/app',
    });
    expect(r.output).toEqual({ dir: DEFAULTS.outputDir, defaultMode: 0o440 });
    expect(r.refreshMs).toBe(DEFAULTS.refreshMs);
    expect(r.jitter).toBe(DEFAULTS.jitter);
    expect(r.backoff).toEqual({ initialMs: 1000, maxMs: 300_000 });
    expect(r.maxStale).toEqual({ afterMs: 0, action: 'keep' });
    expect(r.onChange).toEqual({ type: 'none' });
    expect(r.debounceMs).toBe(200);
    expect(r.agent).toEqual({ mode: 'run', exitFile: undefined, metrics: undefined, onceTimeoutMs: 30_000 });
    expect(r.fetchTimeoutMs).toBe(30_000);
    expect(r.backends.file?.baseDir).toBe('/app');
    expect(r.secrets).toEqual([
      {
        name: 'db',
        ref: expect.objectContaining({ provider: 'vault', locator: 'secret/data/db', key: 'password' }),
        format: 'raw',
        template: undefined,
        file: 'db',
        mode: 0o440,
        refreshMs: DEFAULTS.refreshMs,
        env: undefined,
      },
    ]);
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.secrets[0]!.ref)).toBe(true);
    expect(Object.isFrozen(r.backends.file)).toBe(true);
    expect(() => {
      (r.secrets as unknown as unknown[]).push(1);
    }).toThrow();
  });

  it('agent.metrics: loopback unless an address is given; port and address are checked', () => {
    const with_ = (metrics: unknown) =>
      resolveSpec(spec({ agent: { metrics }, secrets: { db: { ref: 'file:db' } } }), { baseDir: '/app' });
    expect(with_({ port: 9102 }).agent.metrics).toEqual({ port: 9102, address: '127.0.0.1' });
    expect(with_({ port: 9102, address: '0.0.0.0' }).agent.metrics).toEqual({
      port: 9102,
      address: '0.0.0.0',
    });
    expect(with_({ port: 9102, address: '::' }).agent.metrics).toEqual({ port: 9102, address: '::' });
    expect(() => with_({ port: 0 })).toThrow(/SK_ERR_SPEC_INVALID|agent\.metrics\.port/);
    expect(() => with_({ port: 70000 })).toThrow(/agent\.metrics\.port/);
    expect(() => with_({ port: 9102, address: 'pod-ip' })).toThrow(
      /agent\.metrics\.address: must be an IPv4 or IPv6/,
    );
    expect(() => with_({ port: 9102, path: '/m' })).toThrow(/unknown field\(s\) path/);
  });

  it('resolves every field', () => {
    const r = resolveSpec(
      spec({
        metadata: { name: 'app' },
        output: { dir: 'out', defaultMode: '0400', uid: 1000, gid: 2000 },
        refresh: '1m',
        jitter: 0.2,
        backoff: { initial: '500ms', max: '1m' },
        maxStale: { after: '10m', action: 'fail' },
        onChange: 'signal:HUP@nginx',
        debounce: '1s',
        fetchTimeout: '5s',
        agent: { mode: 'once', exitFile: '/tmp/done', onceTimeout: '45s' },
        backends: { file: { baseDir: 'secrets' }, vault: { addr: 'https://vault:8200', role: 'app' } },
        secrets: {
          db: {
            ref: 'file:db.yaml',
            format: 'env',
            file: 'conf/db.env',
            mode: 384,
            refresh: '0',
            env: 'DB_URL',
          },
          'tls.crt': { ref: 'k8s:tls#tls.crt', template: '{{ value }}' },
        },
      }),
      { baseDir: '/app' },
    );
    expect(r.name).toBe('app');
    expect(r.output).toEqual({ dir: '/app/out', defaultMode: 0o400, uid: 1000, gid: 2000 });
    expect([r.refreshMs, r.jitter, r.debounceMs]).toEqual([60_000, 0.2, 1000]);
    expect(r.backoff).toEqual({ initialMs: 500, maxMs: 60_000 });
    expect(r.maxStale).toEqual({ afterMs: 600_000, action: 'fail' });
    expect(r.onChange).toEqual({ type: 'signal', signal: 'SIGHUP', process: 'nginx' });
    expect(r.agent).toEqual({
      mode: 'once',
      exitFile: '/tmp/done',
      metrics: undefined,
      onceTimeoutMs: 45_000,
    });
    expect(r.fetchTimeoutMs).toBe(5000);
    expect(r.backends.file?.baseDir).toBe('/app/secrets');
    expect(r.backends.vault).toEqual({ addr: 'https://vault:8200', role: 'app' });
    const [db, tls] = r.secrets;
    expect(db).toMatchObject({ format: 'env', file: 'conf/db.env', mode: 384, refreshMs: 0, env: 'DB_URL' });
    expect(tls).toMatchObject({
      name: 'tls.crt',
      file: 'tls.crt',
      mode: 0o400,
      refreshMs: 60_000,
      template: '{{ value }}',
    });
  });

  it('keeps declaration order', () => {
    const r = resolveSpec(spec({ secrets: { z: { ref: 'a:1' }, a: { ref: 'a:2' }, m: { ref: 'a:3' } } }));
    expect(r.secrets.map((s) => s.name)).toEqual(['z', 'a', 'm']);
  });

  it.each<[string, unknown, string, string]>([
    ['not a mapping', [], 'SK_ERR_SPEC_INVALID', 'spec: the spec must be a mapping'],
    [
      'wrong apiVersion',
      { ...base, apiVersion: 'v2', secrets: {} },
      'SK_ERR_SPEC_VERSION',
      'got v2/SecretSpec',
    ],
    ['unknown field', spec({ outptu: {} }), 'SK_ERR_SPEC_INVALID', 'spec: (root): unknown field(s) outptu'],
    [
      'bad format',
      spec({ secrets: { db: { ref: 'a:b', format: 'xml' } } }),
      'SK_ERR_SPEC_INVALID',
      'spec: secrets.db.format',
    ],
    [
      'unknown secret field',
      spec({ secrets: { db: { ref: 'a:b', fiel: 'x' } } }),
      'SK_ERR_SPEC_INVALID',
      'secrets.db: unknown field(s) fiel',
    ],
    [
      'bad env name',
      spec({ secrets: { db: { ref: 'a:b', env: '1X' } } }),
      'SK_ERR_SPEC_INVALID',
      'secrets.db.env',
    ],
    ['jitter too large', spec({ jitter: 0.9 }), 'SK_ERR_SPEC_INVALID', 'spec: jitter'],
    ['secret name', spec({ secrets: { DB: { ref: 'a:b' } } }), 'SK_ERR_SECRET_NAME', 'spec:secrets.DB'],
    ['ref', spec({ secrets: { db: { ref: 'nocolon' } } }), 'SK_ERR_REF_SYNTAX', 'spec:secrets.db.ref'],
    [
      'path escape',
      spec({ secrets: { db: { ref: 'a:b', file: '../x' } } }),
      'SK_ERR_PATH_INVALID',
      'spec:secrets.db.file',
    ],
    [
      'absolute path',
      spec({ secrets: { db: { ref: 'a:b', file: '/etc/x' } } }),
      'SK_ERR_PATH_INVALID',
      'is absolute',
    ],
    [
      'mode',
      spec({ secrets: { db: { ref: 'a:b', mode: '0999' } } }),
      'SK_ERR_MODE_INVALID',
      'spec:secrets.db.mode',
    ],
    ['duration', spec({ refresh: '5 minutes' }), 'SK_ERR_DURATION_INVALID', 'spec:refresh'],
    [
      'secret refresh',
      spec({ secrets: { db: { ref: 'a:b', refresh: 30 } } }),
      'SK_ERR_DURATION_INVALID',
      'spec:secrets.db.refresh',
    ],
    ['onChange', spec({ onChange: 'reload' }), 'SK_ERR_ON_CHANGE_INVALID', 'spec:onChange'],
    [
      'a zero deadline',
      spec({ fetchTimeout: '0' }),
      'SK_ERR_DURATION_INVALID',
      'spec:fetchTimeout: a deadline must be above 0',
    ],
    [
      'a zero once deadline',
      spec({ agent: { onceTimeout: 0 } }),
      'SK_ERR_DURATION_INVALID',
      'spec:agent.onceTimeout: a deadline must be above 0',
    ],
    [
      'two secrets, one file',
      spec({ secrets: { a: { ref: 'x:1', file: 'f' }, f: { ref: 'x:2' } } }),
      'SK_ERR_PATH_INVALID',
      '"f" is also the file of secret "a"',
    ],
    [
      'a file inside another',
      spec({ secrets: { a: { ref: 'x:1', file: 'conf' }, b: { ref: 'x:2', file: 'conf/b' } } }),
      'SK_ERR_PATH_INVALID',
      'inside the file of secret "a"',
    ],
  ])('%s → %s', (_what, doc, code, text) => {
    const e = sk(() => resolveSpec(doc));
    expect(e.code).toBe(code);
    expect(e.message).toContain(text);
  });

  it('checks providers against knownProviders', () => {
    const doc = spec({ secrets: { db: { ref: 'vualt:x' } } });
    const e = sk(() => resolveSpec(doc, { knownProviders: ['file', 'vault'], source: 'sidekey.yaml' }));
    expect(e.code).toBe('SK_ERR_PROVIDER_UNKNOWN');
    expect(e.message).toBe(
      'sidekey.yaml:secrets.db.ref: the ref names an unknown provider (known: file, vault)',
    );
  });

  it('calls checkSecret for each resolved secret with its location', () => {
    const seen: string[] = [];
    resolveSpec(spec({ secrets: { a: { ref: 'x:1' }, b: { ref: 'x:2' } } }), {
      source: 'S',
      checkSecret: (s, where) => seen.push(`${s.name}@${where}`),
    });
    expect(seen).toEqual(['a@S:secrets.a', 'b@S:secrets.b']);
  });
});

describe('loadSpec', () => {
  it('reads YAML and JSON', () => {
    const doc = spec({ secrets: { db: { ref: 'file:x.yaml' } } });
    expect(loadSpec(YAML.stringify(doc)).secrets[0]?.name).toBe('db');
    expect(loadSpec(JSON.stringify(doc)).secrets[0]?.name).toBe('db');
  });

  it('a YAML syntax error is SK_ERR_SPEC_PARSE with the source and line', () => {
    const e = sk(() =>
      loadSpec('apiVersion: sidekey.io/v1\nkind: x\n  bad: : indent\nsecrets: {}\n', {
        source: 'sidekey.yaml',
      }),
    );
    expect(e.code).toBe('SK_ERR_SPEC_PARSE');
    expect(e.message).toMatch(/^sidekey\.yaml:2: /);
  });

  it('duplicate keys are refused, naming the line', () => {
    const e = sk(() => loadSpec('apiVersion: sidekey.io/v1\nkind: SecretSpec\nsecrets: {}\nsecrets: {}\n'));
    expect(e.code).toBe('SK_ERR_SPEC_PARSE');
    expect(e.message).toMatch(/^spec:4: /);
  });

  it('reads an unquoted YAML mode with a leading zero as octal (0400 is not decimal 400)', () => {
    const yaml = `${YAML.stringify(base)}output: { defaultMode: 0640 }\nsecrets:\n  db: { ref: 'a:b', mode: 0400 }\n  x: { ref: 'a:c', mode: "440" }\n`;
    const r = loadSpec(yaml);
    expect(r.output.defaultMode).toBe(0o640);
    expect(r.secrets.map((s) => s.mode)).toEqual([0o400, 0o440]);
  });

  it('relative output dirs resolve against baseDir', () => {
    const r = loadSpec(YAML.stringify(spec({ output: { dir: './.sidekey' } })), {
      baseDir: '/home/dev/proj',
    });
    expect(r.output.dir).toBe(path.join('/home/dev/proj', '.sidekey'));
  });
});

describe('specJsonSchema', () => {
  it('describes the document with its top-level fields', () => {
    const s = specJsonSchema() as { properties: Record<string, unknown>; required: string[] };
    expect(Object.keys(s.properties)).toEqual(
      expect.arrayContaining(['apiVersion', 'kind', 'secrets', 'output']),
    );
    expect(s.required).toEqual(expect.arrayContaining(['apiVersion', 'kind', 'secrets']));
  });
});

describe('resolveSpec (property)', () => {
  it('any document either resolves or throws an SkError, never anything else', () => {
    const secret = fc.record(
      {
        ref: fc.oneof(fc.string(), fc.constantFrom('file:a.yaml#k', 'vault:x', 'a:b?x=1')),
        format: fc.oneof(fc.string(), fc.constantFrom('raw', 'json', 'env')),
        file: fc.oneof(fc.string(), fc.constantFrom('a/b', '../x', 'f')),
        mode: fc.oneof(fc.string(), fc.integer(), fc.constantFrom('0440', 0o400)),
        refresh: fc.oneof(fc.string(), fc.integer(), fc.constantFrom('30s', 0)),
        env: fc.string(),
      },
      { requiredKeys: ['ref'] },
    );
    const doc = fc.oneof(
      fc.anything(),
      fc.record(
        {
          apiVersion: fc.constantFrom('sidekey.io/v1', 'v2'),
          kind: fc.constant('SecretSpec'),
          secrets: fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('db', 'a.b', 'x-1')), secret, {
            maxKeys: 4,
          }),
          refresh: fc.oneof(fc.string(), fc.integer()),
          jitter: fc.double(),
          onChange: fc.string(),
          output: fc.record(
            { dir: fc.string(), defaultMode: fc.oneof(fc.string(), fc.integer()) },
            { requiredKeys: [] },
          ),
        },
        { requiredKeys: ['apiVersion', 'kind', 'secrets'] },
      ),
    );
    fc.assert(
      fc.property(doc, (d) => {
        try {
          const r = resolveSpec(d, { baseDir: '/base' });
          expect(Object.isFrozen(r)).toBe(true);
          for (const s of r.secrets) {
            const rel = path.relative(r.output.dir, path.resolve(r.output.dir, s.file));
            expect(rel === s.file && !rel.startsWith('..')).toBe(true);
          }
        } catch (e) {
          if (!isSkError(e)) throw e;
          expect(e.message).not.toContain('\n');
        }
      }),
      { numRuns: 1500 },
    );
  });
});
