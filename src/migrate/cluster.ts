import type * as K8s from '@kubernetes/client-node';
import { firstLine, SkError } from '../errors.js';
import type { ManifestSet } from './workloads.js';
import { secretId } from './workloads.js';

/**
 * Cluster access for `sidekey scan` (workloads) and `sidekey migrate --cluster` (Secret key names),
 * through the current kubeconfig context or the in-cluster config. Secret values are never kept:
 * only key names leave this module.
 */

async function connect(): Promise<{ k8s: typeof K8s; kc: K8s.KubeConfig; namespace: string }> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  try {
    kc.loadFromDefault();
  } catch (e) {
    throw new SkError('SK_ERR_BACKEND_CONFIG', `kubeconfig: ${firstLine(e)}`, {
      where: 'kubeconfig',
    });
  }
  const namespace = kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  return { k8s, kc, namespace };
}

function apiError(e: unknown, call: string, k8s: typeof K8s): SkError {
  if (e instanceof k8s.ApiException) {
    const code =
      e.code === 401
        ? 'SK_ERR_BACKEND_AUTH'
        : e.code === 403
          ? 'SK_ERR_BACKEND_DENIED'
          : e.code === 404
            ? 'SK_ERR_SOURCE_NOT_FOUND'
            : e.code >= 500
              ? 'SK_ERR_BACKEND_UNAVAILABLE'
              : 'SK_ERR_BACKEND_RESPONSE';
    return new SkError(code, `${call}: HTTP ${e.code}`, { where: call });
  }
  return new SkError(
    'SK_ERR_BACKEND_UNAVAILABLE',
    `${call}: cannot reach the API server (${e instanceof Error ? e.name : 'error'})`,
    {
      where: call,
    },
  );
}

interface Listed {
  items: Array<{ metadata?: { ownerReferences?: Array<{ kind?: string; controller?: boolean }> } }>;
}

/**
 * Every workload with a pod template in one namespace (`-n`, else the context's) or all (`-A`), as a
 * ManifestSet (one document per object). Objects managed by a controller that is listed too (Pods of
 * a ReplicaSet, ReplicaSets of a Deployment, Jobs of a CronJob) are skipped, so each finding appears
 * once, at the object people edit.
 */
export async function listClusterWorkloads(opts: {
  namespace?: string;
  all?: boolean;
}): Promise<ManifestSet> {
  const { k8s, kc, namespace: ctxNs } = await connect();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const ns = opts.namespace ?? ctxNs;
  const kinds: Array<[string, string, () => Promise<Listed>, () => Promise<Listed>]> = [
    ['Pod', 'v1', () => core.listPodForAllNamespaces(), () => core.listNamespacedPod({ namespace: ns })],
    [
      'Deployment',
      'apps/v1',
      () => apps.listDeploymentForAllNamespaces(),
      () => apps.listNamespacedDeployment({ namespace: ns }),
    ],
    [
      'StatefulSet',
      'apps/v1',
      () => apps.listStatefulSetForAllNamespaces(),
      () => apps.listNamespacedStatefulSet({ namespace: ns }),
    ],
    [
      'DaemonSet',
      'apps/v1',
      () => apps.listDaemonSetForAllNamespaces(),
      () => apps.listNamespacedDaemonSet({ namespace: ns }),
    ],
    [
      'ReplicaSet',
      'apps/v1',
      () => apps.listReplicaSetForAllNamespaces(),
      () => apps.listNamespacedReplicaSet({ namespace: ns }),
    ],
    [
      'Job',
      'batch/v1',
      () => batch.listJobForAllNamespaces(),
      () => batch.listNamespacedJob({ namespace: ns }),
    ],
    [
      'CronJob',
      'batch/v1',
      () => batch.listCronJobForAllNamespaces(),
      () => batch.listNamespacedCronJob({ namespace: ns }),
    ],
  ];
  const managed = new Set(['ReplicaSet', 'Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob']);
  const values: unknown[] = [];
  for (const [kind, apiVersion, all, one] of kinds) {
    const call = `list ${kind.toLowerCase()}s${opts.all ? ' in all namespaces' : ` in namespace ${ns}`}`;
    let list: Listed;
    try {
      list = await (opts.all ? all() : one());
    } catch (e) {
      throw apiError(e, call, k8s);
    }
    for (const item of list.items) {
      const owners = item.metadata?.ownerReferences ?? [];
      if (owners.some((o) => o.controller && o.kind && managed.has(o.kind))) continue;
      // List items carry no kind/apiVersion; the walker needs them.
      values.push({ ...JSON.parse(JSON.stringify(item)), kind, apiVersion });
    }
  }
  return { source: 'cluster', text: '', json: false, docs: [], values };
}

/**
 * Key names (never values) of the given Secrets; Secrets that cannot be read are left out, with a
 * line for each given to `warn` (the command's stderr).
 */
export async function readSecretKeys(
  secrets: ReadonlyArray<{ namespace: string; name: string }>,
  warn: (line: string) => void = (line) => void process.stderr.write(line),
): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (secrets.length === 0) return out;
  const { k8s, kc } = await connect();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  for (const s of secrets) {
    try {
      const secret = await core.readNamespacedSecret({ name: s.name, namespace: s.namespace });
      out.set(secretId(s.namespace, s.name), Object.keys(secret.data ?? {}).sort());
    } catch (e) {
      const err = apiError(e, `get secrets/${s.name} in namespace ${s.namespace}`, k8s);
      warn(`warn: ${err.code}: ${err.message}; its keys stay unknown\n`);
    }
  }
  return out;
}
