import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { firstLine, SkError } from '../src/errors.js';
import { isRecord } from '../src/is-record.js';
import { KUBE_VERSION_RE, loadWebhookConfig, nativeSidecarsEnabled } from './config.js';
import { createPipelineContext } from './context.js';
import {
  type Explanation,
  explainObject,
  formatExplanation,
  sidekeyWebhook,
  type WebhookEntry,
} from './explain.js';
import { documentItems } from './manifest-docs.js';

export interface ExplainCliOptions {
  /** Manifest files (`-`: stdin); empty with a target: explain a live object. */
  readonly files: readonly string[];
  /** `pod/name`, `deployment/name`, … (live mode). */
  readonly target?: string;
  readonly config?: string;
  readonly kubeVersion?: string;
  readonly namespace?: string;
  readonly json?: boolean;
}

export interface ExplainCliIo {
  readonly stdout: (s: string) => void;
  readonly stderr: (s: string) => void;
  readonly readStdin: () => string;
}

/** Kinds a live target may name (kubectl's names and short names) → apiVersion and kind. */
const LIVE_KINDS: Readonly<Record<string, readonly [string, string]>> = {
  pod: ['v1', 'Pod'],
  po: ['v1', 'Pod'],
  deployment: ['apps/v1', 'Deployment'],
  deploy: ['apps/v1', 'Deployment'],
  statefulset: ['apps/v1', 'StatefulSet'],
  sts: ['apps/v1', 'StatefulSet'],
  daemonset: ['apps/v1', 'DaemonSet'],
  ds: ['apps/v1', 'DaemonSet'],
  replicaset: ['apps/v1', 'ReplicaSet'],
  rs: ['apps/v1', 'ReplicaSet'],
  job: ['batch/v1', 'Job'],
  cronjob: ['batch/v1', 'CronJob'],
  cj: ['batch/v1', 'CronJob'],
};

interface Inputs {
  objects: Array<{ obj: Record<string, unknown>; live: boolean }>;
  namespaces: Map<string, Record<string, string>>;
  webhook: WebhookEntry | undefined;
  version: string | undefined;
}

/**
 * `sidekey explain -f <manifest>…` or `sidekey explain <kind>/<name>`: for each Pod or workload,
 * whether the webhook would inject it and why not, what the agent fetches with which identity, and
 * what is missing. Namespace objects and a MutatingWebhookConfiguration in the manifest set (e.g. the
 * chart's `helm template` output) supply what the API server checks before calling the webhook.
 * Returns the exit code: 0 when every explained object is injected, 1 otherwise.
 */
export async function runExplain(o: ExplainCliOptions, io: ExplainCliIo): Promise<number> {
  if (o.kubeVersion !== undefined && !KUBE_VERSION_RE.test(o.kubeVersion)) {
    throw new SkError(
      'SK_ERR_CLI_USAGE',
      `--kube-version: "${o.kubeVersion}" is not a version such as 1.30 or v1.31.2`,
      {
        where: '--kube-version',
      },
    );
  }
  if ((o.files.length === 0) === (o.target === undefined)) {
    throw new SkError(
      'SK_ERR_CLI_USAGE',
      'sidekey explain: give either -f <manifest> or <kind>/<name>, not both',
      {
        where: 'explain',
      },
    );
  }
  const config = loadWebhookConfig(o.config, {});
  const inputs = o.target !== undefined ? await readLive(o.target, o.namespace) : readFiles(o.files, io);
  const version = o.kubeVersion ?? inputs.version;
  const ctx = createPipelineContext(config, { nativeSidecars: nativeSidecarsEnabled(config, version) });
  const out: Explanation[] = [];
  for (const { obj, live } of inputs.objects) {
    const e = explainObject(obj, {
      ctx,
      namespaces: inputs.namespaces,
      webhook: inputs.webhook,
      defaultNamespace: o.namespace,
      live,
    });
    if (e) out.push(e);
  }
  if (o.json) io.stdout(`${JSON.stringify(out, null, 2)}\n`);
  else io.stdout(out.map((e) => `${formatExplanation(e)}\n`).join('\n'));
  if (out.length === 0) io.stderr('sidekey explain: no Pod or workload in the input\n');
  return out.length > 0 && out.every((e) => e.injected) ? 0 : 1;
}

function readFiles(files: readonly string[], io: ExplainCliIo): Inputs {
  const inputs: Inputs = { objects: [], namespaces: new Map(), webhook: undefined, version: undefined };
  for (const f of files) {
    let text: string;
    try {
      text = f === '-' ? io.readStdin() : readFileSync(f, 'utf8');
    } catch (e) {
      throw new SkError(
        'SK_ERR_CLI_USAGE',
        `-f ${f}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
        {
          where: f,
        },
      );
    }
    for (const doc of YAML.parseAllDocuments(text)) {
      if (!(doc instanceof YAML.Document)) continue;
      for (const item of documentItems(doc, f)) if (isRecord(item)) add(inputs, item, false);
    }
  }
  return inputs;
}

function add(inputs: Inputs, obj: Record<string, unknown>, live: boolean): void {
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  if (obj.kind === 'Namespace' && typeof meta.name === 'string') {
    const labels = isRecord(meta.labels) ? (meta.labels as Record<string, string>) : {};
    // The API server sets this label on every namespace.
    inputs.namespaces.set(meta.name, { 'kubernetes.io/metadata.name': meta.name, ...labels });
  } else if (obj.kind === 'MutatingWebhookConfiguration') {
    inputs.webhook ??= sidekeyWebhook(obj);
  } else {
    inputs.objects.push({ obj, live });
  }
}

/** Read a live object, its namespace, sidekey's MutatingWebhookConfiguration and the cluster version. */
async function readLive(target: string, namespace: string | undefined): Promise<Inputs> {
  const m = /^([a-z]+)(?:\.[a-z.]+)?\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(target.toLowerCase());
  const kind = m ? LIVE_KINDS[m[1]!] : undefined;
  if (!m || !kind) {
    throw new SkError(
      'SK_ERR_CLI_USAGE',
      `sidekey explain: "${target}" is not <kind>/<name> with kind pod, deployment, statefulset, daemonset, replicaset, job or cronjob`,
      { where: 'explain' },
    );
  }
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  try {
    kc.loadFromDefault();
  } catch (e) {
    throw new SkError('SK_ERR_BACKEND_CONFIG', `kubeconfig: ${firstLine(e)}`, { where: 'kubeconfig' });
  }
  const ns = namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  const call = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      const code = e instanceof k8s.ApiException ? e.code : undefined;
      throw new SkError(
        code === 404
          ? 'SK_ERR_SOURCE_NOT_FOUND'
          : code === 401 || code === 403
            ? 'SK_ERR_BACKEND_DENIED'
            : 'SK_ERR_BACKEND_UNAVAILABLE',
        `${what}: ${code !== undefined ? `HTTP ${code}` : `cannot reach the API server (${e instanceof Error ? e.name : 'error'})`}`,
        { where: what },
      );
    }
  };
  const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as Record<string, unknown>;
  const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  const name = m[2]!;
  const obj = await call(`get ${kind[1]} ${ns}/${name}`, () =>
    objects.read({ apiVersion: kind[0], kind: kind[1], metadata: { name, namespace: ns } }),
  );
  const inputs: Inputs = { objects: [], namespaces: new Map(), webhook: undefined, version: undefined };
  const o = plain(obj);
  o.apiVersion ??= kind[0];
  o.kind ??= kind[1];
  add(inputs, o, true);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const nsObj = await call(`get Namespace ${ns}`, () => core.readNamespace({ name: ns }));
  add(inputs, { ...plain(nsObj), kind: 'Namespace' }, true);
  const adm = kc.makeApiClient(k8s.AdmissionregistrationV1Api);
  const list = await call('list MutatingWebhookConfigurations', () => adm.listMutatingWebhookConfiguration());
  for (const item of list.items)
    inputs.webhook ??= sidekeyWebhook({ ...plain(item), kind: 'MutatingWebhookConfiguration' });
  try {
    inputs.version = (await kc.makeApiClient(k8s.VersionApi).getCode()).gitVersion;
  } catch {
    inputs.version = undefined;
  }
  return inputs;
}
