import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  classifyLiteral,
  failsAt,
  formatJson,
  formatTable,
  looksRandom,
  scanWorkloads,
  shannonEntropy,
} from '../../../src/migrate/scan.js';
import { findWorkloads, parseManifests } from '../../../src/migrate/workloads.js';
import { CANARY, expectGolden, FIXTURE_FILES, readFixture } from './golden.js';

function scanFixture(name: string) {
  return scanWorkloads(findWorkloads(parseManifests(readFixture(name), name)));
}

describe('scan golden outputs', () => {
  for (const name of FIXTURE_FILES) {
    it(`${name}: table and json match the golden files and never contain the canary`, () => {
      const report = scanFixture(name);
      const table = formatTable(report);
      const json = formatJson(report);
      expectGolden(`${name}.scan.txt`, table);
      expectGolden(`${name}.scan.json`, json);
      expect(table).not.toContain(CANARY);
      expect(json).not.toContain(CANARY);
      // No fragment of the canary either (a token format built around it must not leak partially).
      expect(`${table}${json}`).not.toMatch(/SKCANARY/i);
    });
  }
});

describe('scan findings', () => {
  it('finds secretKeyRef in init containers and containers, envFrom and optional refs', () => {
    const r = scanFixture('api.yaml');
    expect(r.findings.map((f) => [f.container, f.init, f.kind, f.env, f.secret])).toEqual([
      ['migrate-db', true, 'secretKeyRef', 'DB_PASSWORD', 'payments-db'],
      ['api', false, 'secretKeyRef', 'DB_PASSWORD', 'payments-db'],
      ['api', false, 'secretKeyRef', 'REDIS_TOKEN', 'redis-auth'],
      ['api', false, 'envFrom', '*', 'payments-env'],
    ]);
    expect(r.summary.workloadsScanned).toBe(1);
  });

  it('walks StatefulSet, DaemonSet, CronJob, Job and ReplicaSet, and skips other kinds', () => {
    const r = scanFixture('workloads.yaml');
    expect(r.workloads.map((w) => w.workload)).toEqual([
      'StatefulSet/postgres',
      'DaemonSet/log-shipper',
      'CronJob/nightly-report',
      'Job/seed-data',
      'ReplicaSet/legacy-worker',
    ]);
    expect(r.findings.find((f) => f.kind === 'envFrom')?.env).toBe('ES_*');
  });

  it('reads JSON List objects', () => {
    const r = scanFixture('list.json');
    expect(r.findings).toHaveLength(1);
    expect(r.findings[0]?.source).toBe('list.json#1[0]');
  });

  it('reads a bare JSON array of objects like a List', () => {
    const pod = (name: string) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name },
      spec: {
        containers: [
          { name: 'c', env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] },
        ],
      },
    });
    const r = scanWorkloads(findWorkloads(parseManifests(JSON.stringify([pod('a'), pod('b')]), 'arr.json')));
    expect(r.findings.map((f) => `${f.source} ${f.workload}`)).toEqual([
      'arr.json#1[0] Pod/a',
      'arr.json#1[1] Pod/b',
    ]);
  });

  it('recognises already-migrated workloads (annotations, injected status, *_FILE)', () => {
    const r = scanFixture('already-migrated.yaml');
    expect(r.summary.alreadyMigrated).toBe(2);
    expect(r.findings).toHaveLength(0);
  });

  it('flags literal secrets by format, URL credentials, name and entropy; not settings', () => {
    const r = scanFixture('literals.yaml');
    const by = Object.fromEntries(r.findings.map((f) => [f.env, f.confidence]));
    expect(by).toEqual({
      DATABASE_URL: 'high',
      ADMIN_PASSWORD: 'high',
      GITHUB_TOKEN: 'high',
      AWS_ACCESS_KEY_ID: 'high',
      SLACK_WEBHOOK_TOKEN: 'high',
      SESSION_JWT: 'high',
      TLS_PRIVATE_KEY: 'high',
      CACHE_SALT: 'low',
    });
  });

  it('--fail-on levels', () => {
    const lit = scanFixture('literals.yaml');
    expect(failsAt(lit, 'high')).toBe(true);
    const migrated = scanFixture('already-migrated.yaml');
    expect(failsAt(migrated, 'low')).toBe(false);
    const onlyLow = scanWorkloads(
      findWorkloads(
        parseManifests(
          'kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    env:\n    - {name: SALT, value: Zq8vX2mN4pL7rT1wY6bK9cF3hJ5sD0aG}\n',
          'x',
        ),
      ),
    );
    expect(failsAt(onlyLow, 'high')).toBe(false);
    expect(failsAt(onlyLow, 'medium')).toBe(false);
    expect(failsAt(onlyLow, 'low')).toBe(true);
  });
});

describe('classifyLiteral', () => {
  it.each([
    ['DB_PASSWORD', 'hunter2', 'medium'],
    ['DB_PASSWORD', 'p4ss-W0rd-Very-Long-And-Random-9f8e7d', 'high'],
    ['API_KEY', 'abc', 'medium'],
    ['REDIS_URL', 'redis://:s3cr3t@redis:6379/0', 'high'],
    ['HOOK', 'https://hooks.example.com/x', undefined],
    ['USE_TOKEN', 'true', undefined],
    ['TLS_KEY', '/etc/tls/tls.key', undefined],
    ['DB_PASSWORD', '$(OTHER_VAR)', undefined],
    ['DSN', 'postgres://u:$(DB_PASSWORD)@db/app', undefined],
    ['FEATURE_FLAGS', 'new-checkout,dark-mode', undefined],
    ['IMAGE_DIGEST_NOTE', 'plain words here', undefined],
    ['X', 'AKIAIOSFODNN7EXAMPLE', 'high'],
    ['DB_PASSWORD_FILE', '/run/sidekey/db-password', undefined],
  ])('%s=%s → %s', (name, value, want) => {
    expect(classifyLiteral(name, value)?.confidence).toBe(want);
  });

  it('reasons never contain the value', () => {
    for (const v of [CANARY, `postgres://u:${CANARY}@h/db`, `-----BEGIN RSA PRIVATE KEY-----\n${CANARY}`]) {
      const c = classifyLiteral('SOME_SECRET', v);
      expect(c).toBeDefined();
      expect(c?.reason).not.toContain(CANARY);
    }
  });

  it('entropy helpers', () => {
    expect(shannonEntropy('aaaa')).toBe(0);
    expect(shannonEntropy('abcd')).toBe(2);
    expect(looksRandom('Zq8vX2mN4pL7rT1wY6bK9cF3hJ5sD0aG')).toBe(true);
    expect(looksRandom('0123456789abcdef0123456789abcdef')).toBe(true);
    expect(looksRandom('hello-world-this-is-fine')).toBe(false);
  });
});

describe('scan properties', () => {
  it('no finding ever carries the value, whatever the name and value', () => {
    const name = fc.oneof(
      fc.constantFrom('DB_PASSWORD', 'API_TOKEN', 'SECRET', 'X', 'DATABASE_URL', 'SIGNING_KEY'),
      fc.stringMatching(/^[A-Z_]{1,12}$/),
    );
    const value = fc.oneof(
      fc.string({ minLength: 6, maxLength: 60 }),
      fc.stringMatching(/^[A-Za-z0-9+/=_-]{16,64}$/),
      fc.stringMatching(/^[a-z]{3,8}:\/\/[a-z]{1,8}:[A-Za-z0-9]{6,20}@[a-z.]{3,20}$/),
    );
    fc.assert(
      fc.property(name, value, (n, raw) => {
        // A marker no output line contains, so a hit can only be the value itself.
        const v = `Zq~${raw}`;
        const pod = {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'p' },
          spec: { containers: [{ name: 'c', env: [{ name: n, value: v }] }] },
        };
        const report = scanWorkloads(findWorkloads(parseManifests(JSON.stringify(pod), 'p.json')));
        const out = formatTable(report) + formatJson(report);
        expect(out).not.toContain(v.trim());
      }),
      { numRuns: 300 },
    );
  });
});
