import { apiError, connect } from '../kube-connect.js';
import type { ManifestSet } from './workloads.js';
import { secretId } from './workloads.js';

/**
 * Cluster access for `sidekey scan` (workloads) and `sidekey migrate --cluster` (Secret key names),
 * through the current kubeconfig context or the in-cluster config. Secret values are never kept:
 * only key names leave this module.
 */

interface Listed {
  metadata?: { _continue?: string };
  items: Array<{ metadata?: { ownerReferences?: Array<{ kind?: string; controller?: boolean }> } }>;
}

/** Page size of the list calls: large clusters are read in chunks (`limit`/`continue`). */
export const LIST_PAGE_SIZE = 500;

type Page = { limit: number; _continue?: string };

/** Progress of a listing, for a line on a TTY: the kind being listed and how many objects so far. */
export type ListProgress = (p: { kind: string; listed: number; done: boolean }) => void;

/**
 * Every workload with a pod template in one namespace (`-n`, else the context's) or all (`-A`), as a
 * ManifestSet (one document per object). Lists are paginated ({@link LIST_PAGE_SIZE} objects per
 * request, following `continue`). Objects managed by a controller that is listed too (Pods of a
 * ReplicaSet, ReplicaSets of a Deployment, Jobs of a CronJob) are skipped, so each finding appears
 * once, at the object people edit.
 */
export async function listClusterWorkloads(opts: {
  namespace?: string;
  all?: boolean;
  pageSize?: number;
  progress?: ListProgress;
}): Promise<ManifestSet> {
  const conn = await connect();
  const { k8s, kc } = conn;
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const ns = opts.namespace ?? conn.namespace;
  const limit = opts.pageSize ?? LIST_PAGE_SIZE;
  const kinds: Array<[string, string, (p: Page) => Promise<Listed>, (p: Page) => Promise<Listed>]> = [
    [
      'Pod',
      'v1',
      (p) => core.listPodForAllNamespaces(p),
      (p) => core.listNamespacedPod({ namespace: ns, ...p }),
    ],
    [
      'Deployment',
      'apps/v1',
      (p) => apps.listDeploymentForAllNamespaces(p),
      (p) => apps.listNamespacedDeployment({ namespace: ns, ...p }),
    ],
    [
      'StatefulSet',
      'apps/v1',
      (p) => apps.listStatefulSetForAllNamespaces(p),
      (p) => apps.listNamespacedStatefulSet({ namespace: ns, ...p }),
    ],
    [
      'DaemonSet',
      'apps/v1',
      (p) => apps.listDaemonSetForAllNamespaces(p),
      (p) => apps.listNamespacedDaemonSet({ namespace: ns, ...p }),
    ],
    [
      'ReplicaSet',
      'apps/v1',
      (p) => apps.listReplicaSetForAllNamespaces(p),
      (p) => apps.listNamespacedReplicaSet({ namespace: ns, ...p }),
    ],
    [
      'Job',
      'batch/v1',
      (p) => batch.listJobForAllNamespaces(p),
      (p) => batch.listNamespacedJob({ namespace: ns, ...p }),
    ],
    [
      'CronJob',
      'batch/v1',
      (p) => batch.listCronJobForAllNamespaces(p),
      (p) => batch.listNamespacedCronJob({ namespace: ns, ...p }),
    ],
  ];
  const managed = new Set(['ReplicaSet', 'Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob']);
  const values: unknown[] = [];
  for (const [kind, apiVersion, all, one] of kinds) {
    const call = `list ${kind.toLowerCase()}s${opts.all ? ' in all namespaces' : ` in namespace ${ns}`}`;
    let listed = 0;
    let cont: string | undefined;
    do {
      let list: Listed;
      try {
        const page: Page = cont ? { limit, _continue: cont } : { limit };
        list = await (opts.all ? all(page) : one(page));
      } catch (e) {
        throw apiError(e, call, conn);
      }
      for (const item of list.items) {
        listed++;
        const owners = item.metadata?.ownerReferences ?? [];
        if (owners.some((o) => o.controller && o.kind && managed.has(o.kind))) continue;
        // List items carry no kind/apiVersion; the walker needs them.
        values.push({ ...JSON.parse(JSON.stringify(item)), kind, apiVersion });
      }
      cont = list.metadata?._continue || undefined;
      opts.progress?.({ kind, listed, done: cont === undefined });
    } while (cont);
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
  const conn = await connect();
  const core = conn.kc.makeApiClient(conn.k8s.CoreV1Api);
  for (const s of secrets) {
    try {
      const secret = await core.readNamespacedSecret({ name: s.name, namespace: s.namespace });
      out.set(secretId(s.namespace, s.name), Object.keys(secret.data ?? {}).sort());
    } catch (e) {
      const err = apiError(e, `get secrets/${s.name} in namespace ${s.namespace}`, conn);
      warn(`warn: ${err.code}: ${err.message}; its keys stay unknown\n`);
    }
  }
  return out;
}
