/**
 * Pods at the webhook's limits (webhook/limits.ts), for the limit tests and the memory measurement:
 * as many containers, secrets and `*_FILE` entries as accepted, with annotations and container specs
 * padded towards what the API server lets through (256 KiB of annotations; a pod near etcd's 1.5 MiB).
 */
export interface LargePodShape {
  /** App containers (all get the secrets). */
  readonly containers: number;
  readonly initContainers?: number;
  readonly secrets: number;
  /** Secrets that also get `sidekey.io/env-*` (each adds one `*_FILE` entry per container). */
  readonly envSecrets: number;
  /** Bytes of padding in each secret's ref (a long path). */
  readonly refPad?: number;
  /** Existing env vars per app container, ~200 bytes each. */
  readonly envPerContainer?: number;
}

export function largePod(s: LargePodShape): Record<string, unknown> {
  const ann: Record<string, string> = { 'sidekey.io/inject': 'true' };
  const pad = 'p'.repeat(Math.min(s.refPad ?? 0, 200));
  const dirs =
    pad === '' ? '' : `/${Array.from({ length: Math.ceil((s.refPad ?? 0) / 200) }, () => pad).join('/')}`;
  for (let i = 0; i < s.secrets; i++) {
    ann[`sidekey.io/secret-s${i}`] = `file:/etc/secrets${dirs}/s${i}`;
    if (i < s.envSecrets) ann[`sidekey.io/env-s${i}`] = `SECRET_${i}`;
  }
  const container = (name: string) => ({
    name,
    image: 'registry.example.com/team/app:1.2.3',
    env: Array.from({ length: s.envPerContainer ?? 0 }, (_, e) => ({
      name: `SETTING_${e}`,
      value: 'v'.repeat(180),
    })),
    volumeMounts: [{ name: 'config', mountPath: '/etc/app' }],
  });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'large', namespace: 'shop', annotations: ann },
    spec: {
      volumes: [{ name: 'config', configMap: { name: 'app' } }],
      initContainers: Array.from({ length: s.initContainers ?? 0 }, (_, i) => container(`init-${i}`)),
      containers: Array.from({ length: s.containers }, (_, i) => container(`c${i}`)),
    },
  };
}

/**
 * The largest pod the webhook accepts, by every measure at once: 64 app containers, 256 secrets
 * (32 with env-*: 2048 `*_FILE` entries), ~256 KiB of annotations and a ~1.4 MiB pod.
 */
export const LARGEST: LargePodShape = {
  containers: 64,
  secrets: 256,
  envSecrets: 32,
  refPad: 800,
  envPerContainer: 95,
};

export function admissionReview(object: unknown, uid = 'b6f5a0f2-0000-4000-8000-000000000001') {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object,
      dryRun: false,
    },
  };
}
