import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ANN_INJECT,
  annotationsToSpec,
  BACKEND_SETTINGS,
  classifyKey,
  documentedKeys,
  parseInjectOptions,
  quantityValue,
  suggestKey,
} from '../../src/annotations.js';
import { SkErrorList } from '../../src/error-list.js';
import { SkError } from '../../src/errors.js';
import { resolveSpec } from '../../src/spec.js';

const base = { [ANN_INJECT]: 'true', 'sidekey.io/secret-db': 'vault:secret/data/app/db#password' };

function err(f: () => unknown): SkError {
  try {
    f();
  } catch (e) {
    if (e instanceof SkError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

describe('annotationsToSpec', () => {
  it('builds a spec with values as written, which resolveSpec accepts', () => {
    const spec = annotationsToSpec(
      {
        ...base,
        'sidekey.io/format-db': 'json',
        'sidekey.io/file-db': 'conf/db.json',
        'sidekey.io/mode-db': '0400',
        'sidekey.io/refresh-db': '30s',
        'sidekey.io/env-db': 'DB_PASSWORD',
        'sidekey.io/secret-api.key': 'aws:prod/api?stage=AWSPREVIOUS',
        'sidekey.io/refresh': '1m',
        'sidekey.io/on-change': 'signal:HUP@nginx',
        'sidekey.io/vault-role': 'app',
        'sidekey.io/vault-tls-skip-verify': 'false',
        'sidekey.io/aws-region': 'eu-west-1',
        'other.io/x': 'ignored',
      },
      { backends: { vault: { addr: 'https://vault:8200', role: 'default' } }, mountPath: '/run/sidekey' },
    );
    expect(spec).toEqual({
      apiVersion: 'sidekey.io/v1',
      kind: 'SecretSpec',
      output: { dir: '/run/sidekey' },
      refresh: '1m',
      onChange: 'signal:HUP@nginx',
      backends: {
        vault: { addr: 'https://vault:8200', role: 'app', tlsSkipVerify: false },
        aws: { region: 'eu-west-1' },
      },
      secrets: {
        'api.key': { ref: 'aws:prod/api?stage=AWSPREVIOUS' },
        db: {
          ref: 'vault:secret/data/app/db#password',
          format: 'json',
          file: 'conf/db.json',
          mode: '0400',
          refresh: '30s',
          env: 'DB_PASSWORD',
        },
      },
    });
    const r = resolveSpec(spec);
    expect(r.secrets.map((s) => [s.name, s.file, s.mode, s.refreshMs])).toEqual([
      ['api.key', 'api.key', 0o440, 60_000],
      ['db', 'conf/db.json', 0o400, 30_000],
    ]);
  });

  it('init-only sets agent.mode once; cluster default refresh applies when the pod sets none', () => {
    const spec = annotationsToSpec({ ...base, 'sidekey.io/mode': 'init-only' }, { refresh: '10m' });
    expect(spec.agent).toEqual({ mode: 'once' });
    expect(spec.refresh).toBe('10m');
  });

  it('fetch-timeout and once-timeout set the deadlines', () => {
    const spec = annotationsToSpec({
      ...base,
      'sidekey.io/mode': 'init-only',
      'sidekey.io/fetch-timeout': '5s',
      'sidekey.io/once-timeout': '1m',
    });
    expect(spec.fetchTimeout).toBe('5s');
    expect(spec.agent).toEqual({ mode: 'once', onceTimeout: '1m' });
    const r = resolveSpec(spec);
    expect([r.fetchTimeoutMs, r.agent.onceTimeoutMs]).toEqual([5000, 60_000]);
    expect(annotationsToSpec({ ...base, 'sidekey.io/once-timeout': '10s' }).agent).toEqual({
      onceTimeout: '10s',
    });
  });

  const cases: Array<[Record<string, string>, string, string]> = [
    [{ 'sidekey.io/fetch-timeout': '0' }, 'SK_ERR_DURATION_INVALID', 'sidekey.io/fetch-timeout'],
    [{ 'sidekey.io/once-timeout': '30' }, 'SK_ERR_DURATION_INVALID', 'sidekey.io/once-timeout'],
    [{ 'sidekey.io/bogus': 'x' }, 'SK_ERR_ANNOTATION_UNKNOWN', 'sidekey.io/bogus'],
    [{ 'sidekey.io/secret-DB': 'vault:a' }, 'SK_ERR_SECRET_NAME', 'sidekey.io/secret-DB'],
    [{ 'sidekey.io/secret-db': 'nocolon' }, 'SK_ERR_REF_SYNTAX', 'sidekey.io/secret-db'],
    [{ 'sidekey.io/format-db': 'xml' }, 'SK_ERR_FORMAT_INVALID', 'sidekey.io/format-db'],
    [{ 'sidekey.io/file-db': '../etc/passwd' }, 'SK_ERR_PATH_INVALID', 'sidekey.io/file-db'],
    [{ 'sidekey.io/file-db': '/abs' }, 'SK_ERR_PATH_INVALID', 'sidekey.io/file-db'],
    [{ 'sidekey.io/mode-db': '999' }, 'SK_ERR_MODE_INVALID', 'sidekey.io/mode-db'],
    [{ 'sidekey.io/refresh-db': '30' }, 'SK_ERR_DURATION_INVALID', 'sidekey.io/refresh-db'],
    [{ 'sidekey.io/refresh': 'soon' }, 'SK_ERR_DURATION_INVALID', 'sidekey.io/refresh'],
    [{ 'sidekey.io/on-change': 'signal:KILL' }, 'SK_ERR_ON_CHANGE_INVALID', 'sidekey.io/on-change'],
    [{ 'sidekey.io/env-db': '1BAD' }, 'SK_ERR_ANNOTATION_INVALID', 'sidekey.io/env-db'],
    [{ 'sidekey.io/format-other': 'json' }, 'SK_ERR_ANNOTATION_INVALID', 'sidekey.io/format-other'],
    [{ 'sidekey.io/mode': 'fancy' }, 'SK_ERR_ANNOTATION_INVALID', 'sidekey.io/mode'],
    [{ 'sidekey.io/mount-path': 'relative' }, 'SK_ERR_ANNOTATION_INVALID', 'sidekey.io/mount-path'],
    [{ 'sidekey.io/vault-addr': 'ftp://x' }, 'SK_ERR_ANNOTATION_INVALID', 'sidekey.io/vault-addr'],
    [{ 'sidekey.io/vault-auth-method': 'ldap' }, 'SK_ERR_ANNOTATION_INVALID', 'sidekey.io/vault-auth-method'],
    [{ 'sidekey.io/max-stale-action': 'panic' }, 'SK_ERR_ANNOTATION_INVALID', 'sidekey.io/max-stale-action'],
    [
      { 'sidekey.io/secret-a': 'file:x', 'sidekey.io/file-a': 'db' },
      'SK_ERR_PATH_INVALID',
      'sidekey.io/secret-db',
    ],
    [
      { 'sidekey.io/secret-a': 'file:x', 'sidekey.io/env-a': 'X', 'sidekey.io/env-db': 'X' },
      'SK_ERR_ANNOTATION_INVALID',
      'sidekey.io/env-db',
    ],
  ];
  it.each(cases)('%j → %s naming %s', (extra, code, where) => {
    const e = err(() => annotationsToSpec({ ...base, ...extra }));
    expect(e.code).toBe(code);
    expect(e.where).toBe(where);
    expect(e.message).toContain(where);
  });

  it('reports every mistake of a pod at once, each naming its annotation', () => {
    const e = err(() =>
      annotationsToSpec({
        ...base,
        'sidekey.io/secert-api': 'vault:kv/api',
        'sidekey.io/format-db': 'xml',
        'sidekey.io/mode-db': '999',
        'sidekey.io/refresh': 'soon',
        'sidekey.io/vault-addr': 'ftp://x',
      }),
    ) as SkErrorList;
    expect(e).toBeInstanceOf(SkErrorList);
    expect(e.all.map((x) => [x.code, x.where])).toEqual([
      ['SK_ERR_ANNOTATION_UNKNOWN', 'sidekey.io/secert-api'],
      ['SK_ERR_ANNOTATION_INVALID', 'sidekey.io/vault-addr'],
      ['SK_ERR_FORMAT_INVALID', 'sidekey.io/format-db'],
      ['SK_ERR_MODE_INVALID', 'sidekey.io/mode-db'],
      ['SK_ERR_DURATION_INVALID', 'sidekey.io/refresh'],
    ]);
    // The first is the error's own code and place; the message names them all.
    expect(e.code).toBe('SK_ERR_ANNOTATION_UNKNOWN');
    for (const x of e.all) expect(e.message).toContain(x.message);
  });

  it('suggests the key an unknown sidekey.io/ key most likely means', () => {
    const hint = (k: string, extra: Record<string, string> = {}) =>
      err(() => annotationsToSpec({ ...base, ...extra, [k]: 'x' })).message;
    expect(hint('sidekey.io/secert-db')).toContain('did you mean sidekey.io/secret-db?');
    expect(hint('sidekey.io/secert-db-password')).toContain('did you mean sidekey.io/secret-db-password?');
    expect(hint('sidekey.io/fromat-db')).toContain('did you mean sidekey.io/format-db?');
    expect(hint('sidekey.io/refrsh')).toContain('did you mean sidekey.io/refresh?');
    expect(hint('sidekey.io/vault-adr')).toContain('did you mean sidekey.io/vault-addr?');
    expect(hint('sidekey.io/injects')).toContain('did you mean sidekey.io/inject?');
    expect(hint('sidekey.io/banana')).not.toContain('did you mean');
    expect(suggestKey('sidekey.io/moed-db')).toBe('sidekey.io/mode-db');
  });

  it('refuses an opt-in without any secret', () => {
    const e = err(() => annotationsToSpec({ [ANN_INJECT]: 'true' }));
    expect(e.code).toBe('SK_ERR_ANNOTATION_INVALID');
    expect(e.where).toBe(ANN_INJECT);
  });
});

describe('parseInjectOptions', () => {
  it('parses containers, resources and identity', () => {
    expect(
      parseInjectOptions({
        'sidekey.io/containers': 'app, worker',
        'sidekey.io/cpu-request': '10m',
        'sidekey.io/memory-limit': '64Mi',
        'sidekey.io/run-as-user': '1000',
        'sidekey.io/tmpfs-size': '8Mi',
        'sidekey.io/mode': 'native',
      }),
    ).toEqual({
      mode: 'native',
      containers: ['app', 'worker'],
      resources: { requests: { cpu: '10m' }, limits: { memory: '64Mi' } },
      runAsUser: 1000,
      runAsGroup: undefined,
      tmpfsSize: '8Mi',
      backendInputs: {},
    });
  });
  it.each([
    ['sidekey.io/cpu-limit', 'lots'],
    ['sidekey.io/run-as-user', '0'],
    ['sidekey.io/containers', 'App'],
    ['sidekey.io/containers', ' , '],
    ['sidekey.io/aws-role-arn', 'role/x'],
    ['sidekey.io/metrics-port', 'http'],
    ['sidekey.io/metrics-port', '65536'],
    ['sidekey.io/metrics-port', '-1'],
  ])('%s=%s is refused naming the key', (k, v) => {
    const e = err(() => parseInjectOptions({ [k]: v }));
    expect(e.code).toBe('SK_ERR_ANNOTATION_INVALID');
    expect(e.where).toBe(k);
  });
});

describe('sidekey.io/metrics-port', () => {
  it('is a port, or 0 for off, and absent means the cluster default', () => {
    expect(parseInjectOptions({ 'sidekey.io/metrics-port': ' 9102 ' }).metricsPort).toBe(9102);
    expect(parseInjectOptions({ 'sidekey.io/metrics-port': '0' }).metricsPort).toBe(0);
    expect(parseInjectOptions({}).metricsPort).toBeUndefined();
    expect(err(() => parseInjectOptions({ 'sidekey.io/metrics-port': '65536' })).message).toBe(
      'sidekey.io/metrics-port: "65536" is not a port between 1 and 65535 (or 0 for off)',
    );
  });
});

describe('quantityValue', () => {
  it.each([
    ['32Mi', 32 * 2 ** 20],
    ['128M', 128e6],
    ['100m', 0.1],
    ['0.5', 0.5],
    ['1e3', 1000],
    ['2Gi', 2 * 2 ** 30],
  ])('%s = %d', (q, v) => {
    expect(quantityValue(q)).toBeCloseTo(v);
  });
  it('orders mixed units', () => {
    expect(quantityValue('64Mi') > quantityValue('64M')).toBe(true);
    expect(quantityValue('1')).toBeGreaterThan(quantityValue('999m'));
  });
});

describe('key table', () => {
  it('every backend setting is a sidekey.io key classified as backend, and keys are unique', () => {
    const keys = documentedKeys();
    expect(new Set(keys).size).toBe(keys.length);
    for (const s of BACKEND_SETTINGS) expect(classifyKey(s.key).kind).toBe('backend');
    expect(classifyKey('sidekey.io/mode-db')).toMatchObject({ kind: 'secret', name: 'db' });
    expect(classifyKey('sidekey.io/mode').kind).toBe('pod');
  });
});

describe('docs/annotations.md', () => {
  const doc = readFileSync(new URL('../../docs/annotations.md', import.meta.url), 'utf8');
  it.each(documentedKeys())('documents %s', (key) => {
    expect(doc).toContain(`\`${key}\``);
  });
  it.each(
    BACKEND_SETTINGS.filter((s) => s.field !== undefined).map((s) => [
      s.key,
      `backends.${s.backend}.${s.field}`,
    ]),
  )('%s maps to %s as documented', (key, field) => {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${key}\``));
    expect(row).toContain(`\`${field}\``);
  });
});
