import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import {
  checkMapping,
  formatNotes,
  migrateManifests,
  renderRbac,
  secretNameFor,
  unifiedDiff,
} from '../../../src/migrate/migrate.js';
import { findWorkloads, parseManifests } from '../../../src/migrate/workloads.js';
import { CANARY, expectGolden, FIXTURE_FILES, readFixture } from './golden.js';

function migrate(text: string, source = 'in.yaml', opts = {}) {
  return migrateManifests(parseManifests(text, source), opts);
}

/** Every container's env/envFrom of every workload in a migrated text (plain data). */
function containersOf(text: string) {
  const set = parseManifests(text, 'x');
  return findWorkloads(set).flatMap((w) => w.containers.map((c) => ({ w, c: c.container, init: c.init })));
}

describe('migrate golden outputs', () => {
  for (const name of FIXTURE_FILES) {
    it(`${name}: output, notes and RBAC match the golden files`, () => {
      const text = readFixture(name);
      const r = migrate(text, name);
      expectGolden(`${name}.migrated${name.endsWith('.json') ? '.json' : '.yaml'}`, r.output);
      const report = `${formatNotes(r.notes)}${r.rbac.length ? `---\n${renderRbac(r.rbac)}` : ''}`;
      expectGolden(`${name}.migrate-report.txt`, report);
      expect(report).not.toMatch(/SKCANARY/i);
    });
  }

  it('api.yaml --dry-run diff matches the golden file, and shows no secret values', () => {
    const text = readFixture('api.yaml');
    const d = unifiedDiff('api.yaml', text, migrate(text, 'api.yaml').output);
    expectGolden('api.yaml.dry-run.diff', d);
    expect(d).not.toContain(CANARY);
    expect(d).toMatch(/^-\s+- name: DB_PASSWORD # rotated monthly$/m);
    expect(d).toMatch(/^\+\s+sidekey\.io\/env-db-password: DB_PASSWORD$/m);
  });

  it('--to maps every ref to another backend', () => {
    const text = readFixture('api.yaml');
    const r = migrate(text, 'api.yaml', { to: 'vault:secret/data/{namespace}/{secret}#{key}' });
    expectGolden('api.yaml.migrated-to-vault.yaml', r.output);
    expect(r.output).toContain(
      'sidekey.io/secret-db-password: vault:secret/data/payments/payments-db#password',
    );
    expect(r.rbac).toEqual([]); // no k8s: refs, no RBAC
  });
});

describe('migrate behaviour', () => {
  it('refuses input whose YAML aliases expand too far with SK_ERR_MANIFEST_INVALID naming the source', () => {
    const rows = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (const [x, y] of ['ba', 'cb', 'dc', 'ed', 'fe'])
      rows.push(`${x}: &${x} [${Array(9).fill(`*${y}`).join(', ')}]`);
    expect(() => parseManifests(rows.join('\n'), 'laughs.yaml')).toThrow(
      expect.objectContaining({
        code: 'SK_ERR_MANIFEST_INVALID',
        message: 'laughs.yaml: not usable YAML (its aliases expand too far)',
      }),
    );
  });

  it('removes every secretKeyRef of app containers and expands envFrom when the Secret is in the input', () => {
    const r = migrate(readFixture('api.yaml'), 'api.yaml');
    const w0 = findWorkloads(parseManifests(r.output, 'x'))[0]!;
    for (const c of w0.containers.filter((x) => !x.init)) {
      expect(JSON.stringify(c.container)).not.toContain('secretKeyRef');
      expect(JSON.stringify(c.container.envFrom ?? [])).not.toContain('secretRef');
    }
    // Init containers do not get the sidekey mount: their env secrets stay, with a note.
    expect(JSON.stringify(w0.containers.find((x) => x.init)?.container)).toContain('secretKeyRef');
    expect(formatNotes(r.notes)).toContain('DB_PASSWORD in container migrate-db (init) left as is');
    expect(r.migrated.map((m) => `${m.env}=${m.ref}`)).toEqual([
      'DB_PASSWORD=k8s:payments-db#password',
      'REDIS_TOKEN=k8s:redis-auth#token',
      'STRIPE_API_KEY=k8s:payments-env#STRIPE_API_KEY',
      'WEBHOOK_SIGNING_SECRET=k8s:payments-env#WEBHOOK_SIGNING_SECRET',
    ]);
    const w = findWorkloads(parseManifests(r.output, 'x'))[0];
    expect(w?.annotations['sidekey.io/inject']).toBe('true');
    expect(r.rbac).toEqual([
      {
        namespace: 'payments',
        serviceAccount: 'payments',
        secrets: ['payments-db', 'payments-env', 'redis-auth'],
      },
    ]);
  });

  it('expands envFrom with keys known from the cluster, honouring the prefix', () => {
    const text = readFixture('workloads.yaml');
    const without = migrate(text, 'w.yaml');
    expect(formatNotes(without.notes)).toContain(
      'envFrom Secret elastic-credentials in container shipper: its keys are unknown',
    );
    const r = migrate(text, 'w.yaml', {
      secretKeys: new Map([['logging/elastic-credentials', ['USER', 'PASSWORD']]]),
    });
    const env = r.migrated.filter((m) => m.workload === 'logging/DaemonSet/log-shipper').map((m) => m.env);
    expect(env).toEqual(['ES_USER', 'ES_PASSWORD']);
    expect(r.output).not.toContain('elastic-credentials\n'.replace('\n', '\n  ')); // envFrom entry gone
    const ds = containersOf(r.output).find(({ w }) => w.kind === 'DaemonSet');
    expect(ds?.c.envFrom).toBeUndefined();
  });

  it('keeps comments and untouched documents byte for byte', () => {
    const text = readFixture('api.yaml');
    const r = migrate(text, 'api.yaml');
    for (const comment of [
      '# Payments API: the classic setup',
      '# scaled by HPA in prod',
      '# Runs the schema migrations before the app starts.',
    ]) {
      expect(r.output).toContain(comment);
    }
    // The Secret document is unchanged, so it is copied exactly.
    const secretDoc = text.slice(0, text.indexOf('---\n'));
    expect(r.output.startsWith(secretDoc)).toBe(true);
    // Sequence style of the input (kubectl's un-indented "- ") is kept.
    expect(r.output).toContain('      containers:\n      - name: api');
  });

  it('leaves already-migrated manifests and manifests without env secrets byte for byte', () => {
    for (const name of ['already-migrated.yaml', 'literals.yaml']) {
      const text = readFixture(name);
      const r = migrate(text, name);
      expect(r.output).toBe(text);
      expect(r.changed).toBe(false);
    }
  });

  it('literal secrets are reported with guidance, not moved, never printed', () => {
    const r = migrate(readFixture('literals.yaml'), 'literals.yaml');
    const notes = formatNotes(r.notes);
    expect(notes).toContain('ADMIN_PASSWORD in container shell');
    expect(notes).toContain('sidekey.io/env-admin-password: ADMIN_PASSWORD');
    expect(notes).not.toMatch(/SKCANARY/i);
    expect(r.migrated).toEqual([]);
  });

  it('is idempotent on every fixture: migrating twice equals migrating once', () => {
    for (const name of FIXTURE_FILES) {
      const once = migrate(readFixture(name), name).output;
      const twice = migrate(once, name);
      expect(twice.output).toBe(once);
      expect(twice.migrated).toEqual([]);
    }
  });

  it('one env var from two different Secrets across containers is a conflict, left as is', () => {
    const text = stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec: {
        containers: [
          { name: 'a', env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's1', key: 'k' } } }] },
          { name: 'b', env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's2', key: 'k' } } }] },
        ],
      },
    });
    const r = migrate(text);
    expect(r.output).toBe(text);
    expect(formatNotes(r.notes)).toContain(
      'TOKEN comes from k8s:s1#k in one container and k8s:s2#k in container b',
    );
  });

  it('a same-named non-secret env var in another app container blocks the migration of that var', () => {
    const text = stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec: {
        containers: [
          { name: 'a', env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's1', key: 'k' } } }] },
          { name: 'b', env: [{ name: 'TOKEN', value: 'not-a-secret-here' }] },
        ],
      },
    });
    const r = migrate(text);
    expect(r.output).toBe(text);
    expect(formatNotes(r.notes)).toContain('TOKEN in container b is not from a Secret');
  });

  it('a workload that opted out (sidekey.io/inject other than "true") is left as is', () => {
    const text = stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', annotations: { 'sidekey.io/inject': 'false' } },
      spec: {
        containers: [
          { name: 'a', env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] },
        ],
      },
    });
    const r = migrate(text);
    expect(r.output).toBe(text);
    expect(formatNotes(r.notes)).toContain('opted out of sidekey');
  });

  it('only containers listed in sidekey.io/containers are migrated', () => {
    const text = stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', annotations: { 'sidekey.io/containers': 'a' } },
      spec: {
        containers: [
          { name: 'a', env: [{ name: 'A_TOKEN', valueFrom: { secretKeyRef: { name: 's', key: 'a' } } }] },
          { name: 'b', env: [{ name: 'B_TOKEN', valueFrom: { secretKeyRef: { name: 's', key: 'b' } } }] },
        ],
      },
    });
    const r = migrate(text);
    expect(r.migrated.map((m) => m.env)).toEqual(['A_TOKEN']);
    expect(formatNotes(r.notes)).toContain('B_TOKEN in container b left as is: the container is not listed');
    expect(r.output).toContain('B_TOKEN');
  });

  it('reuses an existing env-<name> declaration and keeps names unique', () => {
    const text = `kind: Pod
metadata:
  name: p
  annotations:
    sidekey.io/secret-db-password: vault:secret/data/x#pw
spec:
  containers:
  - name: a
    env:
    - name: DB_PASSWORD
      valueFrom:
        secretKeyRef: {name: db, key: password}
    - name: DB-PASSWORD
      valueFrom:
        secretKeyRef: {name: db, key: password2}
`;
    const r = migrate(text);
    expect(r.migrated.map((m) => m.name)).toEqual(['db-password-2', 'db-password-3']);
    const ann = (parse(r.output) as { metadata: { annotations: Record<string, string> } }).metadata
      .annotations;
    expect(ann['sidekey.io/secret-db-password']).toBe('vault:secret/data/x#pw');
    expect(ann['sidekey.io/env-db-password-2']).toBe('DB_PASSWORD');
  });

  it('checks --to mappings', () => {
    expect(() => checkMapping('vault:secret/data/{ns}/{secret}')).toThrow(/unknown placeholder \{ns\}/);
    expect(() => checkMapping('nope')).toThrow(/SK_ERR_REF_SYNTAX|no provider/);
    expect(() => checkMapping('aws:prod/{namespace}/{secret}')).not.toThrow();
  });

  it('secret names are valid annotation suffixes', () => {
    expect(secretNameFor('DB_PASSWORD')).toBe('db-password');
    expect(secretNameFor('__X__')).toBe('x');
    expect(secretNameFor('A'.repeat(100)).length).toBeLessThanOrEqual(56);
  });

  it('renders RBAC limited to the exact Secret names', () => {
    const y = renderRbac([{ namespace: 'ns', serviceAccount: 'app', secrets: ['a', 'b'] }]);
    const [role, binding] = parseAllDocuments(y).map((d) => d.toJS());
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['a', 'b'], verbs: ['get', 'watch', 'list'] },
    ]);
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'app', namespace: 'ns' }]);
    expect(binding.roleRef.name).toBe(role.metadata.name);
  });
});

// --- properties -------------------------------------------------------------------------------------

const envName = fc.stringMatching(/^[A-Z][A-Z0-9_]{0,8}$/);
const secretName = fc.stringMatching(/^[a-z][a-z0-9-]{0,6}$/);
const envEntry = fc.oneof(
  fc.record({ name: envName, value: fc.constantFrom('info', '8080', 'hunter2', 'x') }),
  fc.record({
    name: envName,
    valueFrom: fc.record({
      secretKeyRef: fc.record({ name: secretName, key: fc.constantFrom('password', 'token') }),
    }),
  }),
);
const container = fc.record({
  name: fc.constantFrom('app', 'side', 'init'),
  image: fc.constant('img:1'),
  env: fc.array(envEntry, { maxLength: 5 }),
});
const workload = fc.record({
  kind: fc.constantFrom('Pod', 'Deployment', 'Job', 'CronJob'),
  containers: fc.array(container, { minLength: 1, maxLength: 3 }),
  initContainers: fc.array(container, { maxLength: 2 }),
  flow: fc.boolean(),
});

function manifest(w: { kind: string; containers: unknown[]; initContainers: unknown[] }, i: number) {
  const pod = {
    spec: {
      containers: w.containers,
      ...(w.initContainers.length ? { initContainers: w.initContainers } : {}),
    },
  };
  const meta = { name: `w${i}`, namespace: 'ns' };
  switch (w.kind) {
    case 'Pod':
      return { apiVersion: 'v1', kind: 'Pod', metadata: meta, ...pod };
    case 'CronJob':
      return {
        apiVersion: 'batch/v1',
        kind: 'CronJob',
        metadata: meta,
        spec: { jobTemplate: { spec: { template: pod } } },
      };
    default:
      return { apiVersion: 'apps/v1', kind: w.kind, metadata: meta, spec: { template: pod } };
  }
}

describe('migrate properties', () => {
  it('idempotent, and every migrated var is gone from every container and declared once', () => {
    fc.assert(
      fc.property(fc.array(workload, { minLength: 1, maxLength: 3 }), (ws) => {
        const text = ws
          .map((w, i) => stringify(manifest(w, i), { collectionStyle: w.flow ? 'flow' : 'block' }))
          .join('---\n');
        const r1 = migrate(text);
        const r2 = migrate(r1.output);
        expect(r2.output).toBe(r1.output);
        expect(r2.migrated).toEqual([]);
        const conflicts = new Set(
          r1.notes.filter((n) => n.level === 'warn').map((n) => n.message.split(' ')[0]),
        );
        for (const { w, c, init } of containersOf(r1.output)) {
          // Init containers keep their env secrets (with a note): the webhook does not mount them.
          if (init) continue;
          const env = (c.env ?? []) as Array<{ name: string; valueFrom?: unknown }>;
          for (const e of env) if (e.valueFrom) expect(conflicts.has(e.name)).toBe(true);
          for (const m of r1.migrated.filter((x) => x.workload.endsWith(`${w.kind}/${w.name}`))) {
            // No secretKeyRef is left for it (a literal of the same name is removed by the webhook).
            expect(env.some((e) => e.name === m.env && e.valueFrom)).toBe(false);
            expect(w.annotations[`sidekey.io/env-${m.name}`]).toBe(m.env);
            expect(w.annotations[`sidekey.io/secret-${m.name}`]).toBe(m.ref);
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});
