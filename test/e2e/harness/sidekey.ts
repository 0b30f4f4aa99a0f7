import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  type KubernetesObject,
  type V1ConfigMap,
  type V1Deployment,
  type V1MutatingWebhookConfiguration,
  VersionApi,
} from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import type { Kube } from './kube.js';
import type { CertPair } from './pki.js';
import { loadCa } from './pki.js';
import { freePort, GiveUp, type Proc, startProc, waitFor } from './procs.js';
import { tool } from './tools.js';

const repo = resolve(import.meta.dirname, '../../..');
const chart = join(repo, 'charts', 'sidekey');

/**
 * Renders the chart with `helm template` (the same output a user applies) and parses it. Without the
 * `helm test` hook objects: `helm install` does not create them (only `helm test` does), and they live
 * in a fixed namespace, so a second install in the same cluster would collide with the first's.
 */
export function helmTemplate(
  release: string,
  namespace: string,
  values: Record<string, unknown>,
  kubeVersion: string,
): KubernetesObject[] {
  const dir = mkdtempSync(join(tmpdir(), 'sidekey-helm-'));
  const valuesFile = join(dir, 'values.yaml');
  writeFileSync(valuesFile, stringify(values));
  try {
    const out = execFileSync(
      tool('helm'),
      [
        'template',
        release,
        chart,
        '--skip-tests',
        '--namespace',
        namespace,
        '--kube-version',
        kubeVersion,
        '-f',
        valuesFile,
      ],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    return parseAllDocuments(out)
      .map((d) => d.toJS() as KubernetesObject | null)
      .filter((o): o is KubernetesObject => !!o?.kind);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A sidekey install: the chart's objects in the API server and the webhook running as a local process. */
export interface SidekeyInstall {
  namespace: string;
  release: string;
  /** The MutatingWebhookConfiguration's name. */
  webhookConfigName: string;
  /** The webhook's config file (the chart's ConfigMap data, as mounted in the Deployment). */
  configFile: string;
  /** The serving certificate and key files the webhook hot-reloads. */
  certFile: string;
  keyFile: string;
  objects: KubernetesObject[];
  port: number;
  url: string;
  webhook?: Proc;
  tls: CertPair;
  /** The webhook's Prometheus /metrics text. */
  metrics(): Promise<string>;
  /** Starts (again) the webhook process on the same port and waits for /readyz. */
  startWebhook(): Promise<Proc>;
  /**
   * Starts another replica (POD_NAME `<release>-webhook-<index>`, own port and certificate files), as a
   * second pod of the Deployment would run; the API server does not call it (url mode has one URL).
   */
  startReplica(index: number): Promise<{ proc: Proc; port: number }>;
  /** Stops the webhook process (the configuration stays: "webhook down"). */
  stopWebhook(): Promise<void>;
  /** Stops the webhook and deletes the cluster-scoped webhook configuration. */
  uninstall(): Promise<void>;
}

function httpsGet(port: number, ca: string, path: string): Promise<{ status: number; text: string }> {
  return new Promise((res, rej) => {
    // No ca: readiness and metrics only; with self-managed TLS the CA is the webhook's own.
    const req = request(
      { host: '127.0.0.1', port, path, ca, rejectUnauthorized: false, timeout: 3000 },
      (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => res({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', rej);
    req.end();
  });
}

const httpsStatus = async (port: number, ca: string, path: string): Promise<number> =>
  (await httpsGet(port, ca, path)).status;

/**
 * Installs sidekey from `helm template` in url mode (the API server calls https://127.0.0.1:<port>/mutate,
 * since there are no Service endpoints without a kubelet), with a serving certificate signed by the
 * harness CA (tls.mode=secret + webhook.caBundle), then starts `sidekey webhook` locally with the
 * chart's config file.
 */
export async function installSidekey(
  k: Kube,
  opts: {
    release?: string;
    namespace?: string;
    values?: Record<string, unknown>;
    start?: boolean;
    /**
     * tls.mode=self-managed: no caBundle and no certificate files; the webhook runs with the chart
     * Deployment's self-managed TLS arguments, as the chart's ServiceAccount.
     */
    selfManagedTls?: boolean;
  } = {},
): Promise<SidekeyInstall> {
  const release = opts.release ?? 'sidekey';
  const namespace = opts.namespace ?? `sidekey-system-${Date.now().toString(36)}`;
  const port = await freePort();
  const url = `https://127.0.0.1:${port}/mutate`;
  const ca = await loadCa(k.info.caPem, k.info.caKeyPem);
  const tls = await ca.sign({
    subject: 'CN=sidekey-webhook',
    usage: 'server',
    ips: ['127.0.0.1'],
    dns: ['localhost'],
  });
  const selfManaged = opts.selfManagedTls === true;
  const version = await k.kc.makeApiClient(VersionApi).getCode();
  const values = {
    // Out of the cluster the webhook cannot ask the API server for its version (it only does so
    // in-cluster), so url mode states it, as the chart's values document.
    kubernetesVersion: version.gitVersion,
    ...opts.values,
    webhook: { ...(opts.values?.webhook as object), url, ...(selfManaged ? {} : { caBundle: k.info.caPem }) },
    tls: { mode: selfManaged ? 'self-managed' : 'secret', ...(opts.values?.tls as object) },
  };

  const objects = helmTemplate(release, namespace, values, version.gitVersion);
  let chartArgs: string[] | undefined;
  if (selfManaged) {
    // url mode renders no ServiceAccount, RBAC, Secret or Lease (no in-cluster webhook); take them
    // from the in-cluster rendering, as a webhook replica would have them.
    const inCluster = helmTemplate(
      release,
      namespace,
      { ...values, webhook: { ...(values.webhook as object), url: '' } },
      version.gitVersion,
    );
    const deployment = inCluster.find((o) => o.kind === 'Deployment') as V1Deployment | undefined;
    chartArgs = deployment?.spec?.template.spec?.containers.find((c) => c.args?.[0] === 'webhook')?.args;
    if (!chartArgs) throw new Error('helm template rendered no Deployment running `webhook`');
    const wanted = new Set([
      'ServiceAccount',
      'Role',
      'RoleBinding',
      'ClusterRole',
      'ClusterRoleBinding',
      'Secret',
      'Lease',
    ]);
    objects.push(...inCluster.filter((o) => wanted.has(o.kind as string)));
  }
  await k.core.createNamespace({ body: { metadata: { name: namespace } } });
  for (const o of objects) {
    await k.objects.create({
      ...o,
      metadata: { ...o.metadata, namespace: o.metadata?.namespace ?? undefined },
    });
  }
  const mwc = objects.find(
    (o) => o.kind === 'MutatingWebhookConfiguration',
  ) as V1MutatingWebhookConfiguration;
  const cm = objects.find(
    (o) => o.kind === 'ConfigMap' && (o as V1ConfigMap).data?.['config.yaml'],
  ) as V1ConfigMap;
  if (!mwc?.metadata?.name) throw new Error('helm template rendered no MutatingWebhookConfiguration');
  if (!cm) throw new Error('helm template rendered no ConfigMap with config.yaml');
  mkdirSync(join(k.info.dir, 'webhooks'), { recursive: true });
  const dir = mkdtempSync(join(k.info.dir, 'webhooks', `${release}-`));
  const configFile = join(dir, 'config.yaml');
  writeFileSync(configFile, cm.data?.['config.yaml'] ?? '');
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  if (!selfManaged) {
    writeFileSync(certFile, tls.certPem);
    writeFileSync(keyFile, tls.keyPem, { mode: 0o600 });
  }
  let saKubeconfig: string | undefined;
  if (selfManaged) {
    const sa = objects.find((o) => o.kind === 'ServiceAccount')?.metadata?.name;
    if (!sa) throw new Error('helm template rendered no ServiceAccount');
    const token = await k.core.createNamespacedServiceAccountToken({
      name: sa,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    saKubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      saKubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'e2e',
            cluster: {
              server: k.info.server,
              'certificate-authority-data': Buffer.from(k.info.caPem).toString('base64'),
            },
          },
        ],
        users: [{ name: sa, user: { token: token.status?.token } }],
        contexts: [{ name: 'e2e', context: { cluster: 'e2e', user: sa, namespace } }],
        'current-context': 'e2e',
      }),
      { mode: 0o600 },
    );
  }
  const extra: Proc[] = [];
  /** Starts one webhook replica (`<release>-webhook-<index>`) and waits for /readyz. */
  const spawnWebhook = async (index: number, onPort: number, cert: string, key: string): Promise<Proc> => {
    const local = [`--config=${configFile}`, `--tls-cert=${cert}`, `--tls-key=${key}`, `--port=${onPort}`];
    // Self-managed: the Deployment's own arguments (paths and port made local), the certificate
    // also issued for 127.0.0.1, and the API reached as the chart's ServiceAccount.
    const args = chartArgs
      ? [
          ...chartArgs.filter((a) => !/^--(config|tls-cert|tls-key|port)=/.test(a)),
          ...local,
          '--tls-hosts=127.0.0.1',
        ]
      : ['webhook', ...local];
    const proc = startProc(
      process.execPath,
      [join(repo, 'bin', 'sidekey.js'), ...args],
      join(dir, index === 0 ? 'webhook.log' : `webhook-${index}.log`),
      {
        env: {
          ...process.env,
          POD_NAMESPACE: namespace,
          POD_NAME: `${release}-webhook-${index}`,
          KUBECONFIG: saKubeconfig ?? k.info.kubeconfig,
          // debug: skip reasons are logged at debug level.
          SIDEKEY_LOG_LEVEL: 'debug',
        },
      },
    );
    await waitFor(
      'sidekey webhook /readyz',
      async () => {
        if (proc.ended()) throw new GiveUp(`sidekey webhook exited:\n${proc.log().slice(-3000)}`);
        return (await httpsStatus(onPort, k.info.caPem, '/readyz')) === 200 ? true : undefined;
      },
      30_000,
    );
    return proc;
  };
  const install: SidekeyInstall = {
    namespace,
    release,
    webhookConfigName: mwc.metadata.name,
    configFile,
    certFile,
    keyFile,
    objects,
    port,
    url,
    tls,
    metrics: async () => (await httpsGet(port, k.info.caPem, '/metrics')).text,
    startWebhook: async () => {
      const proc = await spawnWebhook(0, port, certFile, keyFile);
      install.webhook = proc;
      return proc;
    },
    startReplica: async (index: number) => {
      const replicaPort = await freePort();
      const replicaDir = join(dir, `replica-${index}`);
      mkdirSync(replicaDir, { recursive: true });
      const proc = await spawnWebhook(
        index,
        replicaPort,
        join(replicaDir, 'tls.crt'),
        join(replicaDir, 'tls.key'),
      );
      extra.push(proc);
      return { proc, port: replicaPort };
    },
    stopWebhook: async () => {
      await install.webhook?.stop();
    },
    uninstall: async () => {
      await Promise.all(extra.map((p) => p.stop()));
      await install.webhook?.stop();
      await k.admission.deleteMutatingWebhookConfiguration({ name: mwc.metadata?.name as string });
    },
  };
  if (opts.start !== false) await install.startWebhook();
  return install;
}
