import { X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TlsManager } from '../../webhook/tls-manager.ts';
import { createNamespace, kube, pod, uniqueName } from './harness/kube.js';
import { waitFor } from './harness/procs.js';
import { installSidekey, type SidekeyInstall } from './harness/sidekey.js';

function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

// Self-managed TLS (tls.mode=self-managed) against the real API server: the TLS manager, with the
// chart's own ServiceAccount and RBAC, creates the CA and serving certificate, patches the caBundle
// of the chart's MutatingWebhookConfiguration, and rotates the serving certificate while the API
// server keeps calling the webhook.
describe('self-managed TLS against a real kube-apiserver', () => {
  const k = kube();
  let sk: SidekeyInstall;
  let mgr: TlsManager | undefined;

  beforeAll(async () => {
    sk = await installSidekey(k, { release: 'sk-tls', selfManagedTls: true, start: false });
  });
  afterAll(async () => {
    await mgr?.stop();
    await sk?.uninstall();
  });

  it('patches the caBundle and rotates the certificate while pods are created, with no failed admission', async () => {
    const kindName = (kind: string): string => {
      const o = sk.objects.find((x) => x.kind === kind);
      if (!o?.metadata?.name) throw new Error(`the chart rendered no ${kind} for self-managed TLS`);
      return o.metadata.name;
    };
    const secretName = kindName('Secret');
    // Run as the chart's ServiceAccount: its RBAC must be enough (get/update the Secret and Lease,
    // patch the webhook configuration).
    const token = await k.core.createNamespacedServiceAccountToken({
      name: kindName('ServiceAccount'),
      namespace: sk.namespace,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const saKc = new KubeConfig();
    saKc.loadFromOptions({
      clusters: [
        { name: 'e2e', server: k.info.server, caData: Buffer.from(k.info.caPem).toString('base64') },
      ],
      users: [{ name: 'sidekey', token: token.status?.token }],
      contexts: [{ name: 'e2e', cluster: 'e2e', user: 'sidekey' }],
      currentContext: 'e2e',
    });
    mgr = new TlsManager({
      kubeConfig: saKc,
      namespace: sk.namespace,
      secretName,
      webhookConfigName: sk.webhookConfigName,
      leaseName: kindName('Lease'),
      serviceName: 'sidekey',
      extraHosts: ['127.0.0.1'],
      certFile: sk.certFile,
      keyFile: sk.keyFile,
      identity: 'e2e-replica-0',
      certValidityMs: 16_000,
      renewAt: 0.5,
      syncIntervalMs: 1000,
      leaseDurationMs: 15_000,
    });
    await mgr.start();
    const mwc = await k.admission.readMutatingWebhookConfiguration({ name: sk.webhookConfigName });
    const bundle = Buffer.from(mwc.webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64').toString();
    expect(bundle).toContain('-----BEGIN CERTIFICATE-----');
    await sk.startWebhook();
    const first = await servedSerial(sk.port);

    const ns = await createNamespace(k, uniqueName('tls-rotation'));
    const secretSerials = new Set<string>();
    const failures: string[] = [];
    let created = 0;
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      const secret: V1Secret = await k.core.readNamespacedSecret({
        name: secretName,
        namespace: sk.namespace,
      });
      const crt = Buffer.from(secret.data?.['tls.crt'] ?? '', 'base64').toString();
      if (crt) secretSerials.add(new X509Certificate(crt).serialNumber);
      try {
        const p = await k.core.createNamespacedPod({
          namespace: ns,
          body: pod(`p${created}`, { 'sidekey.io/inject': 'true', 'sidekey.io/secret-x': 'k8s:x#y' }),
        });
        if (p.metadata?.annotations?.['sidekey.io/status'] !== 'injected')
          failures.push(`p${created}: not injected`);
      } catch (e) {
        failures.push(`p${created}: ${(e as Error).message.slice(0, 300)}`);
      }
      created += 1;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(failures).toEqual([]);
    expect(created).toBeGreaterThan(20);
    // At least two rotations happened during the run, and the webhook serves the newest certificate.
    expect(secretSerials.size).toBeGreaterThanOrEqual(3);
    const last = await waitFor(
      'the webhook to serve a rotated certificate',
      async () => {
        const s = await servedSerial(sk.port);
        return s !== first ? s : undefined;
      },
      20_000,
    );
    expect(last).not.toBe(first);
  });
});
