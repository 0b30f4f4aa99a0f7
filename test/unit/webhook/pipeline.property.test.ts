import fc from 'fast-check';
import jsonpatch from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { describe, expect, it } from 'vitest';
import { loadSpecJson } from '../../../src/load.js';
import type { Container, Pod } from '../../../webhook/k8s.js';
import { mutatePod } from '../../../webhook/pipeline.js';
import { testContext } from './helpers.js';

/**
 * Property-based tests of the whole pipeline over generated pods and annotation sets:
 * - it never throws, whatever the input;
 * - every patch applies cleanly (fast-json-patch, with operation validation) and yields exactly the
 *   injected pod, which validates against the Kubernetes Pod schema (kubernetes-models);
 * - what it adds passes the restricted Pod Security Standard;
 * - injecting the result again is a no-op;
 * - an invalid annotation always yields a denial naming that annotation.
 */

const CONTAINER_NAMES = ['app', 'web', 'worker', 'nginx', 'metrics', 'proxy'];
const SECRET_NAMES = ['db', 'api.key', 'tls-cert', 'token', 'cfg', 'x1'];
const ENV_NAMES = ['DB_PASSWORD', 'API_KEY', 'TLS_CERT', 'TOKEN', 'CFG', 'X1', 'LOG_LEVEL', 'HOME'];
const REFS = [
  'vault:secret/data/app/db#password',
  'vault:database/creds/app',
  'aws:prod/app/db#password',
  'aws:arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf?stage=AWSPREVIOUS',
  'k8s:db-credentials#password',
  'file:/etc/sidekey/local.yaml#db.password',
];

const envVar = fc.oneof(
  fc.record({ name: fc.constantFrom(...ENV_NAMES), value: fc.string({ maxLength: 8 }) }),
  fc.record({
    name: fc.constantFrom(...ENV_NAMES),
    valueFrom: fc.record({
      secretKeyRef: fc.record({ name: fc.constantFrom('s1', 's2'), key: fc.constantFrom('k') }),
    }),
  }),
);

const containerArb = (name: string): fc.Arbitrary<Container> =>
  fc
    .record(
      {
        image: fc.constantFrom('app:1', 'nginx:1.27', 'busybox'),
        env: fc.uniqueArray(envVar, { maxLength: 4, selector: (e) => e.name }),
        volumeMounts: fc.constantFrom(
          [],
          [{ name: 'config', mountPath: '/etc/config', readOnly: true }],
          [{ name: 'cache', mountPath: '/cache' }],
        ),
        securityContext: fc.record(
          { runAsUser: fc.integer({ min: 0, max: 70000 }), runAsGroup: fc.integer({ min: 0, max: 70000 }) },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: ['image'] },
    )
    .map((c) => ({ name, ...c }) as Container);

const podSpecArb = fc
  .uniqueArray(fc.constantFrom(...CONTAINER_NAMES), { minLength: 1, maxLength: 5 })
  .chain((names) =>
    fc.record(
      {
        containers: fc.tuple(...names.map(containerArb)),
        initContainers: fc.constantFrom(undefined, [{ name: 'init-db', image: 'busybox' }]),
        volumes: fc.constantFrom(undefined, [
          { name: 'config', configMap: { name: 'cfg' } },
          { name: 'cache', emptyDir: {} },
        ]),
        securityContext: fc.record(
          {
            runAsUser: fc.integer({ min: 0, max: 70000 }),
            runAsGroup: fc.integer({ min: 0, max: 70000 }),
            fsGroup: fc.integer({ min: 1, max: 70000 }),
          },
          { requiredKeys: [] },
        ),
        automountServiceAccountToken: fc.boolean(),
        restartPolicy: fc.constantFrom('Always', 'OnFailure', 'Never'),
      },
      { requiredKeys: ['containers'] },
    ),
  )
  .map((s) => {
    const spec = { ...s, containers: [...s.containers] } as Record<string, unknown>;
    for (const k of Object.keys(spec)) if (spec[k] === undefined) delete spec[k];
    // A container may only mount volumes the pod has.
    if (!spec.volumes) for (const c of spec.containers as Container[]) c.volumeMounts = [];
    return spec as unknown as Pod['spec'];
  });

/** A valid annotation set for a pod whose containers are `names`. */
const annotationsArb = (names: string[]) =>
  fc
    .record({
      secrets: fc.uniqueArray(fc.constantFrom(...SECRET_NAMES), { minLength: 1, maxLength: 4 }),
      refs: fc.array(fc.constantFrom(...REFS), { minLength: 4, maxLength: 4 }),
      per: fc.array(
        fc.record(
          {
            format: fc.constantFrom('raw', 'json', 'env', 'yaml', 'properties'),
            file: fc.constant(true),
            mode: fc.constantFrom('0400', '0440', '444', '0o600'),
            refresh: fc.constantFrom('0', '30s', '5m', '1h30m'),
            env: fc.constant(true),
            template: fc.constantFrom('{{ value }}', '{% for k in value %}{{ k }}{% endfor %}', 'static'),
          },
          { requiredKeys: [] },
        ),
        { minLength: 4, maxLength: 4 },
      ),
      mode: fc.constantFrom(undefined, 'auto', 'native', 'sidecar', 'init-only'),
      containers: fc.option(fc.subarray(names, { minLength: 1 }), { nil: undefined }),
      mountPath: fc.constantFrom(undefined, '/run/sidekey', '/etc/app/secrets', '/secrets'),
      refresh: fc.constantFrom(undefined, '1m', '0'),
      onChange: fc.constantFrom(
        undefined,
        'none',
        'signal:HUP',
        'signal:USR1@nginx',
        'http:http://127.0.0.1:8080/-/reload',
        'exec:/bin/reload now',
      ),
      cpu: fc.constantFrom(undefined, '5m', '0.1'),
      memLimit: fc.constantFrom(undefined, '64Mi', '128M'),
      runAsUser: fc.constantFrom(undefined, '1000'),
      tmpfs: fc.constantFrom(undefined, '8Mi'),
      vaultRole: fc.constantFrom(undefined, 'app'),
      vaultAudience: fc.constantFrom(undefined, 'vault'),
      awsRole: fc.boolean(),
    })
    .map((a) => {
      const ann: Record<string, string> = { 'sidekey.io/inject': 'true' };
      a.secrets.forEach((name, i) => {
        ann[`sidekey.io/secret-${name}`] = a.refs[i]!;
        const p = a.per[i]!;
        if (p.format) ann[`sidekey.io/format-${name}`] = p.format;
        if (p.file) ann[`sidekey.io/file-${name}`] = `out/${name}.txt`;
        if (p.mode) ann[`sidekey.io/mode-${name}`] = p.mode;
        if (p.refresh) ann[`sidekey.io/refresh-${name}`] = p.refresh;
        if (p.env) ann[`sidekey.io/env-${name}`] = name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
        if (p.template) ann[`sidekey.io/template-${name}`] = p.template;
      });
      if (a.mode) ann['sidekey.io/mode'] = a.mode;
      if (a.containers) ann['sidekey.io/containers'] = a.containers.join(',');
      if (a.mountPath) ann['sidekey.io/mount-path'] = a.mountPath;
      if (a.refresh) ann['sidekey.io/refresh'] = a.refresh;
      if (a.onChange) ann['sidekey.io/on-change'] = a.onChange;
      if (a.cpu) ann['sidekey.io/cpu-request'] = a.cpu;
      if (a.memLimit) ann['sidekey.io/memory-limit'] = a.memLimit;
      if (a.runAsUser) ann['sidekey.io/run-as-user'] = a.runAsUser;
      if (a.tmpfs) ann['sidekey.io/tmpfs-size'] = a.tmpfs;
      if (a.vaultRole) ann['sidekey.io/vault-role'] = a.vaultRole;
      if (a.vaultAudience) ann['sidekey.io/vault-audience'] = a.vaultAudience;
      if (a.awsRole && Object.values(ann).some((v) => v.startsWith('aws:'))) {
        ann['sidekey.io/aws-role-arn'] = 'arn:aws:iam::123456789012:role/app';
      }
      return ann;
    });

const podArb: fc.Arbitrary<Pod> = podSpecArb.chain((spec) =>
  fc
    .record({
      annotations: annotationsArb(spec!.containers.map((c) => c.name)),
      other: fc.dictionary(
        fc.constantFrom('app.kubernetes.io/name', 'prometheus.io/scrape'),
        fc.string({ maxLength: 5 }),
      ),
      name: fc.constantFrom('web', 'api-7d9f'),
    })
    .map(({ annotations, other, name }) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, annotations: { ...other, ...annotations } },
      spec,
    })),
);

const RUNS = Number(process.env.SIDEKEY_PROPERTY_RUNS ?? 2000);
const ctxNative = testContext({}, { nativeSidecars: true });
const ctxClassic = testContext(
  { backends: { vault: { addr: 'https://vault:8200', role: 'default' } } },
  { nativeSidecars: false },
);

function restrictedViolations(c: Container): string[] {
  const sc = c.securityContext ?? {};
  const v: string[] = [];
  if (sc.runAsNonRoot !== true) v.push('runAsNonRoot');
  if (sc.runAsUser === 0) v.push('runAsUser 0');
  if (sc.allowPrivilegeEscalation !== false) v.push('allowPrivilegeEscalation');
  if (sc.privileged) v.push('privileged');
  if (!sc.capabilities?.drop?.includes('ALL')) v.push('drop ALL');
  if ((sc.capabilities?.add ?? []).length > 0) v.push('add caps');
  if (sc.seccompProfile?.type !== 'RuntimeDefault') v.push('seccomp');
  if (sc.readOnlyRootFilesystem !== true) v.push('readOnlyRootFilesystem');
  return v;
}

describe('pipeline properties', () => {
  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.anything(), fc.constantFrom('CREATE', 'UPDATE'), (pod, operation) => {
        const o = mutatePod({ operation, namespace: 'x', pod: pod as Pod }, ctxNative);
        expect(['skip', 'inject', 'invalid']).toContain(o.kind);
      }),
      { numRuns: RUNS },
    );
    // Opted-in but otherwise arbitrary pods.
    fc.assert(
      fc.property(fc.object(), fc.anything(), (spec, extra) => {
        const pod = {
          metadata: { annotations: { 'sidekey.io/inject': 'true', 'sidekey.io/secret-a': 'vault:a' } },
          spec: { ...spec, containers: extra },
        };
        const o = mutatePod({ operation: 'CREATE', namespace: 'x', pod: pod as unknown as Pod }, ctxNative);
        expect(['skip', 'inject', 'invalid']).toContain(o.kind);
      }),
      { numRuns: RUNS },
    );
  }, 120_000);

  it('patches apply cleanly, give a schema-valid restricted pod, and re-injection is a no-op', () => {
    let injected = 0;
    fc.assert(
      fc.property(podArb, fc.boolean(), (pod, native) => {
        const ctx = native ? ctxNative : ctxClassic;
        const before = structuredClone(pod);
        const o = mutatePod({ operation: 'CREATE', namespace: 'shop', pod }, ctx);
        expect(pod).toEqual(before);
        if (o.kind !== 'inject') {
          // The generated annotation sets are valid; the only refusal is a mount-path clash.
          expect(o.kind === 'invalid' && o.error.where).toBe('sidekey.io/mount-path');
          return;
        }
        injected++;
        const applied = jsonpatch.applyPatch(structuredClone(pod), jsonpatch.deepClone(o.patch), true, false)
          .newDocument as Pod;
        expect(applied).toEqual(o.pod);
        for (const p of ['/spec/volumes', '/spec/initContainers']) {
          expect(o.patch.filter((x) => x.op === 'add' && x.path === p).length).toBeLessThanOrEqual(1);
        }
        new PodModel(applied as never).validate();
        const ours = [...(applied.spec?.initContainers ?? []), ...(applied.spec?.containers ?? [])].filter(
          (c) => c.name.startsWith('sidekey-'),
        );
        expect(ours.length).toBeGreaterThan(0);
        for (const c of ours) expect(restrictedViolations(c)).toEqual([]);
        // The agent accepts the spec it is handed, with the secrets the annotations declare.
        const declared = Object.keys(pod.metadata!.annotations!)
          .filter((k) => k.startsWith('sidekey.io/secret-'))
          .map((k) => k.slice('sidekey.io/secret-'.length))
          .sort();
        for (const c of ours) {
          const json = c.env?.find((e) => e.name === 'SIDEKEY_SPEC')?.value;
          const spec = loadSpecJson(json!, { registry: ctx.registry });
          expect(spec.secrets.map((x) => x.name)).toEqual(declared);
          expect(spec.output.dir).toBe(c.volumeMounts?.find((m) => m.name === 'sidekey-secrets')?.mountPath);
        }
        const again = mutatePod({ operation: 'CREATE', namespace: 'shop', pod: applied }, ctx);
        expect(again).toEqual({ kind: 'skip', reason: 'already-injected' });
      }),
      { numRuns: RUNS },
    );
    expect(injected).toBeGreaterThan(RUNS / 2);
  }, 120_000);

  /** One corruption per case: the annotation to set, its bad value, the key the denial must name. */
  const CORRUPTIONS: Array<{ key: (secret: string) => string; value: string; code: string }> = [
    { key: (s) => `sidekey.io/format-${s}`, value: 'xml', code: 'SK_ERR_FORMAT_INVALID' },
    { key: (s) => `sidekey.io/mode-${s}`, value: '0999', code: 'SK_ERR_MODE_INVALID' },
    { key: (s) => `sidekey.io/refresh-${s}`, value: '10', code: 'SK_ERR_DURATION_INVALID' },
    { key: (s) => `sidekey.io/file-${s}`, value: '../escape', code: 'SK_ERR_PATH_INVALID' },
    { key: (s) => `sidekey.io/env-${s}`, value: '9LIVES', code: 'SK_ERR_ANNOTATION_INVALID' },
    {
      key: (s) => `sidekey.io/template-${s}`,
      value: '{% if x %}never closed',
      code: 'SK_ERR_TEMPLATE_SYNTAX',
    },
    { key: (s) => `sidekey.io/secret-${s}`, value: 'nope-no-colon', code: 'SK_ERR_REF_SYNTAX' },
    {
      key: (s) => `sidekey.io/secret-${s}`,
      value: 'nosuch:projects/x/secrets/y',
      code: 'SK_ERR_PROVIDER_UNKNOWN',
    },
    { key: () => 'sidekey.io/format-undeclared', value: 'json', code: 'SK_ERR_ANNOTATION_INVALID' },
    { key: () => 'sidekey.io/secret-Upper', value: 'vault:a', code: 'SK_ERR_SECRET_NAME' },
    { key: () => 'sidekey.io/frobnicate', value: 'yes', code: 'SK_ERR_ANNOTATION_UNKNOWN' },
    { key: () => 'sidekey.io/mode', value: 'sometimes', code: 'SK_ERR_ANNOTATION_INVALID' },
    { key: () => 'sidekey.io/containers', value: 'no-such-container', code: 'SK_ERR_CONTAINER_UNKNOWN' },
    { key: () => 'sidekey.io/mount-path', value: 'relative/path', code: 'SK_ERR_ANNOTATION_INVALID' },
    {
      key: () => 'sidekey.io/mount-path',
      value: '/var/run/secrets/sidekey.io/serviceaccount',
      code: 'SK_ERR_ANNOTATION_INVALID',
    },
    { key: () => 'sidekey.io/refresh', value: 'often', code: 'SK_ERR_DURATION_INVALID' },
    { key: () => 'sidekey.io/on-change', value: 'signal:KILL', code: 'SK_ERR_ON_CHANGE_INVALID' },
    { key: () => 'sidekey.io/cpu-limit', value: 'two cores', code: 'SK_ERR_ANNOTATION_INVALID' },
    { key: () => 'sidekey.io/run-as-user', value: '0', code: 'SK_ERR_ANNOTATION_INVALID' },
    { key: () => 'sidekey.io/memory-request', value: '1Ei', code: 'SK_ERR_ANNOTATION_INVALID' },
    { key: () => 'sidekey.io/tmpfs-size', value: '-4Mi', code: 'SK_ERR_ANNOTATION_INVALID' },
    { key: () => 'sidekey.io/vault-addr', value: 'vault:8200', code: 'SK_ERR_ANNOTATION_INVALID' },
    { key: () => 'sidekey.io/vault-auth-method', value: 'ldap', code: 'SK_ERR_ANNOTATION_INVALID' },
    { key: () => 'sidekey.io/vault-tls-skip-verify', value: 'yes', code: 'SK_ERR_ANNOTATION_INVALID' },
    { key: () => 'sidekey.io/max-stale-action', value: 'explode', code: 'SK_ERR_ANNOTATION_INVALID' },
  ];

  it('an invalid annotation always yields a denial naming it', () => {
    fc.assert(
      fc.property(podArb, fc.constantFrom(...CORRUPTIONS), (pod, c) => {
        const ann = pod.metadata!.annotations!;
        const secret = Object.keys(ann)
          .find((k) => k.startsWith('sidekey.io/secret-'))!
          .slice('sidekey.io/secret-'.length);
        const key = c.key(secret);
        const bad: Pod = { ...pod, metadata: { ...pod.metadata, annotations: { ...ann, [key]: c.value } } };
        const o = mutatePod({ operation: 'CREATE', namespace: 'shop', pod: bad }, ctxNative);
        expect(o.kind).toBe('invalid');
        if (o.kind !== 'invalid') return;
        expect(o.error.code).toBe(c.code);
        expect(o.error.where).toBe(key);
        expect(o.error.message).toContain(key);
      }),
      { numRuns: RUNS },
    );
  }, 120_000);
});

describe('large pods', () => {
  it('a container with 2000 env vars gets a short patch: one remove, one add, the mount', () => {
    const env = Array.from({ length: 2000 }, (_, i) => ({ name: `VAR_${i}`, value: String(i) }));
    const pod: Pod = {
      metadata: {
        annotations: {
          'sidekey.io/inject': 'true',
          'sidekey.io/secret-db': 'vault:secret/data/big#password',
          'sidekey.io/env-db': 'VAR_1000',
        },
      },
      spec: { containers: [{ name: 'app', image: 'app:1', env }] },
    };
    const o = mutatePod({ operation: 'CREATE', namespace: 'shop', pod }, ctxNative);
    if (o.kind !== 'inject') throw new Error(`not injected: ${JSON.stringify(o)}`);
    const envOps = o.patch.filter((p) => p.path.startsWith('/spec/containers/0/env'));
    expect(envOps).toEqual([
      { op: 'remove', path: '/spec/containers/0/env/1000' },
      {
        op: 'add',
        path: '/spec/containers/0/env/-',
        value: { name: 'VAR_1000_FILE', value: '/run/sidekey/db' },
      },
    ]);
    const applied = jsonpatch.applyPatch(
      structuredClone(pod),
      jsonpatch.deepClone(o.patch),
      true,
      false,
    ).newDocument;
    expect(applied).toEqual(o.pod);
  });
});
