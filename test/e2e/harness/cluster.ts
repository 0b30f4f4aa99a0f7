import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { type Ca, createCa, serviceAccountKeys } from './pki.js';
import { freePort, GiveUp, type Proc, startProc, waitFor } from './procs.js';
import { tool } from './tools.js';

/** How tests reach the harness's API server (plain data: it crosses from globalSetup to the tests). */
export interface ClusterInfo {
  /** https://127.0.0.1:<port> */
  server: string;
  port: number;
  /** kubeconfig with the admin (system:masters) client certificate, for client-node and helm. */
  kubeconfig: string;
  caPem: string;
  caKeyPem: string;
  /** Service-account token issuer (the pod's projected tokens carry it as `iss`). */
  issuer: string;
  /** Work dir with logs (etcd.log, kube-apiserver.log) and certificates. */
  dir: string;
  /**
   * ClusterIP of the `kubernetes` Service (first address of a service range picked per run), which
   * the kubelet hands pods as KUBERNETES_SERVICE_HOST; the node harness forwards it to the API server.
   */
  serviceIp: string;
}

/** A running etcd + kube-apiserver pair. */
export interface Cluster {
  info: ClusterInfo;
  ca: Ca;
  stop(): Promise<void>;
}

export const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';

function get(info: { port: number; ca: string; cert: string; key: string }, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: info.port,
        path,
        ca: info.ca,
        cert: info.cert,
        key: info.key,
        timeout: 5000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/**
 * Starts etcd and kube-apiserver on random loopback ports with fresh certificates and
 * service-account keys; PodSecurity and the admission webhooks on, RBAC authorization. No kubelet,
 * scheduler or controller-manager: pods are stored and stay Pending, namespaces get no default
 * ServiceAccount by themselves (tests create the ones they use).
 */
export async function startCluster(dir = mkdtempSync(join(tmpdir(), 'sidekey-e2e-'))): Promise<Cluster> {
  const etcdBin = tool('etcd');
  const apiserverBin = tool('kube-apiserver');
  mkdirSync(dir, { recursive: true });
  const ca = await createCa();
  // A service range of its own per run (10.100-249.0.0/16), so that the node harness's forwarder for
  // the `kubernetes` Service address never meets another run's.
  const octet = 100 + Math.floor(Math.random() * 150);
  const serviceIp = `10.${octet}.0.1`;
  const serving = await ca.sign({
    subject: 'CN=kube-apiserver',
    usage: 'server',
    dns: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
    ips: ['127.0.0.1', serviceIp],
  });
  const admin = await ca.sign({ subject: 'CN=sidekey-e2e-admin, O=system:masters', usage: 'client' });
  // The API server's client certificate towards kubelets (pod logs, exec), as kubeadm makes one.
  const kubeletClient = await ca.sign({
    subject: 'CN=kube-apiserver-kubelet-client, O=system:masters',
    usage: 'client',
  });
  const sa = serviceAccountKeys();
  const f = (name: string, content: string): string => {
    const p = join(dir, name);
    writeFileSync(p, content, { mode: 0o600 });
    return p;
  };
  const caFile = f('ca.crt', ca.certPem);
  const servingCert = f('apiserver.crt', serving.certPem);
  const servingKey = f('apiserver.key', serving.keyPem);
  const saKey = f('sa.key', sa.privatePem);
  const saPub = f('sa.pub', sa.publicPem);
  const kubeletClientCert = f('apiserver-kubelet-client.crt', kubeletClient.certPem);
  const kubeletClientKey = f('apiserver-kubelet-client.key', kubeletClient.keyPem);

  const [etcdClient, etcdPeer, port] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdClient}`;
  const etcd = startProc(
    etcdBin,
    [
      '--name=e2e',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=e2e=http://127.0.0.1:${etcdPeer}`,
      // Throwaway data: durability buys nothing here and fsync is slow on shared disks.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    join(dir, 'etcd.log'),
  );
  let apiserver: Proc | undefined;
  const stop = async (): Promise<void> => {
    await apiserver?.stop();
    await etcd.stop();
  };
  try {
    await waitFor('etcd to serve', async () => {
      if (etcd.ended()) throw new GiveUp(`etcd exited:\n${etcd.log().slice(-2000)}`);
      const r = await fetch(`${etcdUrl}/health`);
      return r.ok ? true : undefined;
    });
    apiserver = startProc(
      apiserverBin,
      [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        // The kubernetes Service endpoints may not be loopback; nothing here needs them.
        '--endpoint-reconciler-type=none',
        `--secure-port=${port}`,
        `--tls-cert-file=${servingCert}`,
        `--tls-private-key-file=${servingKey}`,
        `--client-ca-file=${caFile}`,
        `--service-account-issuer=${SA_ISSUER}`,
        `--service-account-key-file=${saPub}`,
        `--service-account-signing-key-file=${saKey}`,
        `--service-cluster-ip-range=10.${octet}.0.0/16`,
        // Node: the e2e node's kubelet (system:node:<name>) gets what its pods need, as in kubeadm clusters.
        '--authorization-mode=Node,RBAC',
        `--kubelet-client-certificate=${kubeletClientCert}`,
        `--kubelet-client-key=${kubeletClientKey}`,
        // As in real clusters; Pod Security admission is what forbids privileged pods per namespace.
        '--allow-privileged=true',
        // Added to the default set (which includes ServiceAccount, NamespaceLifecycle, ...).
        '--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook,PodSecurity,NodeRestriction',
        // Without a controller-manager nothing would reap these; they are harmless either way.
        '--enable-priority-and-fairness=false',
        '--profiling=false',
        '--v=1',
      ],
      join(dir, 'kube-apiserver.log'),
    );
    const certs = { port, ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };
    const api = apiserver;
    await waitFor(
      'kube-apiserver /readyz',
      async () => {
        if (api.ended()) throw new GiveUp(`kube-apiserver exited:\n${api.log().slice(-3000)}`);
        return (await get(certs, '/readyz')) === 200 ? true : undefined;
      },
      120_000,
      300,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  const server = `https://127.0.0.1:${port}`;
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const kubeconfig = f(
    'kubeconfig',
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'e2e', cluster: { server, 'certificate-authority-data': b64(ca.certPem) } }],
      users: [
        {
          name: 'admin',
          user: { 'client-certificate-data': b64(admin.certPem), 'client-key-data': b64(admin.keyPem) },
        },
      ],
      contexts: [{ name: 'e2e', context: { cluster: 'e2e', user: 'admin' } }],
      'current-context': 'e2e',
    }),
  );
  return {
    info: {
      server,
      port,
      kubeconfig,
      caPem: ca.certPem,
      caKeyPem: ca.keyPem,
      issuer: SA_ISSUER,
      dir,
      serviceIp,
    },
    ca,
    stop,
  };
}
