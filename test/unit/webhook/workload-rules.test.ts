import { describe, expect, it } from 'vitest';
import type { Pod } from '../../../webhook/k8s.js';
import { mutatePod } from '../../../webhook/pipeline.js';
import { runsToCompletion } from '../../../webhook/workload-rules.js';
import { assignedUids, containerViolations, podViolations } from '../../helpers/restricted-v2.js';
import { testContext } from './helpers.js';

const RANGE = { first: 1000650000, size: 10000 };

function pod(spec: Partial<NonNullable<Pod['spec']>> = {}, annotations: Record<string, string> = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'p',
      annotations: {
        'sidekey.io/inject': 'true',
        'sidekey.io/secret-db': 'vault:secret/data/shop/db#password',
        'sidekey.io/secret-cfg': 'k8s:shop-config#url',
        ...annotations,
      },
    },
    spec: { containers: [{ name: 'app', image: 'shop/app:1' }], ...spec },
  };
}

function inject(p: Pod, config: Parameters<typeof testContext>[0] = {}, native = true) {
  const o = mutatePod(
    { operation: 'CREATE', namespace: 'shop', pod: p },
    testContext(config, { nativeSidecars: native }),
  );
  if (o.kind !== 'inject') throw new Error(`not injected: ${JSON.stringify(o)}`);
  return o;
}

describe('OpenShift restricted-v2', () => {
  const pods: Array<[string, Pod]> = [
    ['no uid, no fsGroup', pod()],
    [
      'restricted pod settings',
      pod({ securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } } }),
    ],
    ['classic sidecar', pod({}, { 'sidekey.io/mode': 'sidecar' })],
    [
      'init-only with signal',
      pod({}, { 'sidekey.io/mode': 'init-only', 'sidekey.io/on-change': 'signal:HUP' }),
    ],
  ];

  it.each(pods)(
    '%s: the agent passes restricted-v2 and runs with the uid the SCC assigns to the app',
    (_n, p) => {
      const o = inject(p, { openshift: true });
      const ours = [...(o.pod.spec!.initContainers ?? []), ...o.pod.spec!.containers].filter((c) =>
        c.name.startsWith('sidekey-'),
      );
      expect(ours.length).toBeGreaterThan(0);
      for (const c of ours) {
        expect(c.securityContext?.runAsUser).toBeUndefined();
        expect(c.securityContext?.runAsGroup).toBeUndefined();
        expect(containerViolations(o.pod, c, RANGE)).toEqual([]);
      }
      expect(podViolations(o.pod, RANGE)).toEqual([]);
      // After the SCC assigned uids: the agent and the app are the same user, and share the fsGroup,
      // so the 0440 files are readable.
      const { uids } = assignedUids(o.pod, RANGE);
      for (const c of ours) expect(uids.get(c.name)).toBe(uids.get('app'));
      expect(o.warnings).toEqual([]);
    },
  );

  it('without openshift, the fixed default uid is refused by restricted-v2 (the check can fail)', () => {
    const o = inject(pod());
    const agent = o.pod.spec!.initContainers![0]!;
    expect(agent.securityContext?.runAsUser).toBe(65532);
    expect(containerViolations(o.pod, agent, RANGE)).toEqual([
      "sidekey-agent: runAsUser 65532 is not in the namespace's range",
    ]);
  });

  it('an explicit run-as-user annotation is kept (the user chose a uid of the range)', () => {
    const o = inject(pod({}, { 'sidekey.io/run-as-user': '1000650007' }), { openshift: true });
    const agent = o.pod.spec!.initContainers![0]!;
    expect(agent.securityContext?.runAsUser).toBe(1000650007);
    expect(containerViolations(o.pod, agent, RANGE)).toEqual([]);
  });
});

describe('pods that run to completion', () => {
  it('restartPolicy Never/OnFailure or a Job/CronJob owner', () => {
    expect(runsToCompletion(pod({ restartPolicy: 'Never' }))).toBe(true);
    expect(runsToCompletion(pod({ restartPolicy: 'OnFailure' }))).toBe(true);
    expect(runsToCompletion(pod({ restartPolicy: 'Always' }))).toBe(false);
    expect(runsToCompletion(pod())).toBe(false);
    const owned = pod();
    owned.metadata!.ownerReferences = [{ kind: 'Job', name: 'j' }];
    expect(runsToCompletion(owned)).toBe(true);
    owned.metadata!.ownerReferences = [{ kind: 'ReplicaSet', name: 'r' }];
    expect(runsToCompletion(owned)).toBe(false);
  });

  it('an explicit sidecar mode in a Job becomes init-only with a warning, even on a native cluster', () => {
    const o = inject(pod({ restartPolicy: 'Never' }, { 'sidekey.io/mode': 'sidecar' }));
    expect(o.mode).toBe('init-only');
    expect(o.pod.spec!.containers.map((c) => c.name)).toEqual(['app']);
    expect(o.warnings.join('\n')).toMatch(/runs to completion.*sidekey\.io\/exit-file/);
    expect(JSON.parse(String(o.pod.spec!.initContainers![0]!.env![0]!.value)).agent).toEqual({
      mode: 'once',
    });
  });

  it('turning a Job into init-only keeps its other agent settings (the once deadline)', () => {
    const o = inject(
      pod({ restartPolicy: 'Never' }, { 'sidekey.io/mode': 'sidecar', 'sidekey.io/once-timeout': '45s' }),
    );
    expect(o.mode).toBe('init-only');
    expect(JSON.parse(String(o.pod.spec!.initContainers![0]!.env![0]!.value)).agent).toEqual({
      onceTimeout: '45s',
      mode: 'once',
    });
  });

  it('a long-running pod on an old cluster keeps the classic sidecar and gets no warning', () => {
    const o = inject(pod({ securityContext: { runAsUser: 1000 } }), {}, false);
    expect(o.mode).toBe('sidecar');
    expect(o.warnings).toEqual([]);
  });

  it('an exit file inside the secrets mount, or over an app mount, is refused naming the annotation', () => {
    const bad = (ann: Record<string, string>, spec: Partial<NonNullable<Pod['spec']>> = {}) => {
      const o = mutatePod(
        { operation: 'CREATE', namespace: 'shop', pod: pod({ restartPolicy: 'Never', ...spec }, ann) },
        testContext({}, { nativeSidecars: false }),
      );
      return o.kind === 'invalid' ? `${o.error.where}: ${o.error.message}` : o.kind;
    };
    expect(bad({ 'sidekey.io/exit-file': '/run/sidekey/done' })).toMatch(
      /^sidekey\.io\/exit-file: .*overlaps the secrets mount/,
    );
    expect(bad({ 'sidekey.io/exit-file': 'done' })).toMatch(/^sidekey\.io\/exit-file: .*absolute/);
    expect(bad({ 'sidekey.io/exit-file': '/done' })).toMatch(/^sidekey\.io\/exit-file: .*in a directory/);
    expect(
      bad(
        { 'sidekey.io/exit-file': '/work/done' },
        {
          containers: [{ name: 'app', volumeMounts: [{ name: 'w', mountPath: '/work' }] }],
          volumes: [{ name: 'w', emptyDir: {} }],
        },
      ),
    ).toMatch(/already mounts a volume at \/work/);
  });
});

describe('files the app can read', () => {
  const modes = (o: ReturnType<typeof inject>) =>
    JSON.parse(String(o.pod.spec!.initContainers![0]!.env![0]!.value)).output as Record<string, unknown>;

  it('a uid or an fsGroup keeps the 0440 default; neither makes it 0444', () => {
    expect(modes(inject(pod({ securityContext: { runAsUser: 1000 } }))).defaultMode).toBeUndefined();
    expect(modes(inject(pod({ securityContext: { fsGroup: 2000 } }))).defaultMode).toBeUndefined();
    expect(modes(inject(pod())).defaultMode).toBe('0444');
    // One selected container of unknown uid is enough.
    const two = pod({
      containers: [{ name: 'a', securityContext: { runAsUser: 1000 } }, { name: 'b' }],
    });
    expect(modes(inject(two)).defaultMode).toBe('0444');
  });

  it('warns when the app runs as another uid without a shared group', () => {
    const o = inject(pod({ securityContext: { runAsUser: 1000 } }, { 'sidekey.io/run-as-user': '2000' }));
    expect(o.warnings).toHaveLength(2);
    expect(o.warnings[0]).toMatch(
      /^sidekey\.io\/run-as-user: the app may not be able to read "cfg" \(mode 0440\): container "app" runs as uid 1000, the agent as 2000/,
    );
    // A shared fsGroup makes group-readable files readable: no warning.
    const ok = inject(
      pod({ securityContext: { runAsUser: 1000, fsGroup: 3000 } }, { 'sidekey.io/run-as-user': '2000' }),
    );
    expect(ok.warnings).toEqual([]);
  });
});
