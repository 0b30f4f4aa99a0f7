import { X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import {
  CoordinationV1Api,
  type V1MutatingWebhookConfiguration,
  type V1Secret,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

const serialOf = (pem: string): string => new X509Certificate(pem).serialNumber;

// Self-managed TLS (tls.mode=self-managed) against the real API server: `sidekey webhook` runs with
// the chart Deployment's own --tls-self-managed arguments and the chart's ServiceAccount and RBAC;
// it creates the CA and serving certificate, patches the caBundle of the chart's
// MutatingWebhookConfiguration, and rotates the serving certificate while the API server keeps
// calling it.
describe('self-managed TLS against a real kube-apiserver', () => {
  const k = kube();
  let sk: SidekeyInstall;

  beforeAll(async () => {
    sk = await installSidekey(k, {
      release: 'sk-tls',
      selfManagedTls: true,
      // Short validity so that rotations happen within the test (renewed at half of 16s).
      values: {
        tls: { selfManaged: { certValidity: '16s', renewAt: 0.5, syncInterval: '1s', leaseDuration: '6s' } },
      },
    });
  });
  afterAll(async () => {
    await sk?.uninstall();
  });

  it('patches the caBundle and rotates the certificate while pods are created, with no failed admission', async () => {
    const secretName = sk.objects.find((o) => o.kind === 'Secret')?.metadata?.name as string;
    expect(secretName).toBeTruthy();
    const mwc = await k.admission.readMutatingWebhookConfiguration({ name: sk.webhookConfigName });
    const bundle = Buffer.from(mwc.webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64').toString();
    expect(bundle).toContain('-----BEGIN CERTIFICATE-----');
    const stored = await k.core.readNamespacedSecret({ name: secretName, namespace: sk.namespace });
    expect(bundle).toBe(Buffer.from(stored.data?.['ca-bundle.crt'] ?? '', 'base64').toString());
    const first = await servedSerial(sk.port);

    const ns = await createNamespace(k, uniqueName('tls-rotation'));
    const secretSerials = new Set<string>();
    const failures: string[] = [];
    let created = 0;
    // At least 20 s of pod creations, and on until two rotations were seen (bounded: 45 s).
    const minUntil = Date.now() + 20_000;
    const maxUntil = Date.now() + 45_000;
    while ((Date.now() < minUntil || secretSerials.size < 3) && Date.now() < maxUntil) {
      const secret: V1Secret = await k.core.readNamespacedSecret({
        name: secretName,
        namespace: sk.namespace,
      });
      const crt = Buffer.from(secret.data?.['tls.crt'] ?? '', 'base64').toString();
      if (crt) secretSerials.add(serialOf(crt));
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
    // At least two rotations happened during the run, and the webhook serves a rotated certificate.
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
    expect(sk.webhook?.log()).toContain('TLS certificate reloaded');
  });

  it('restores the caBundle when the chart re-applies the webhook configuration (helm upgrade, GitOps)', async () => {
    const rendered = sk.objects.find(
      (o) => o.kind === 'MutatingWebhookConfiguration',
    ) as V1MutatingWebhookConfiguration;
    expect(rendered.webhooks?.[0]?.clientConfig.caBundle).toBeUndefined();
    const live = await k.admission.readMutatingWebhookConfiguration({ name: sk.webhookConfigName });
    // What `kubectl apply`/`helm upgrade` of the rendered manifest leaves: no caBundle.
    await k.admission.replaceMutatingWebhookConfiguration({
      name: sk.webhookConfigName,
      body: {
        ...rendered,
        metadata: { ...rendered.metadata, resourceVersion: live.metadata?.resourceVersion },
      },
    });
    const reset = await k.admission.readMutatingWebhookConfiguration({ name: sk.webhookConfigName });
    expect(reset.webhooks?.[0]?.clientConfig.caBundle).toBeFalsy();
    await waitFor(
      'the webhook to patch the caBundle again',
      async () => {
        const m = await k.admission.readMutatingWebhookConfiguration({ name: sk.webhookConfigName });
        return m.webhooks?.[0]?.clientConfig.caBundle ? true : undefined;
      },
      30_000,
    );
    const ns = await createNamespace(k, uniqueName('tls-reapplied'));
    const p = await k.core.createNamespacedPod({
      namespace: ns,
      body: pod('after-reapply', { 'sidekey.io/inject': 'true', 'sidekey.io/secret-x': 'k8s:x#y' }),
    });
    expect(p.metadata?.annotations?.['sidekey.io/status']).toBe('injected');
  });

  it("replicas: one Lease holder writes, every replica serves the Secret's certificate, a new leader takes over", async () => {
    const leaseName = sk.objects.find((o) => o.kind === 'Lease')?.metadata?.name as string;
    const secretName = sk.objects.find((o) => o.kind === 'Secret')?.metadata?.name as string;
    const coordination = k.kc.makeApiClient(CoordinationV1Api);
    const holder = async (): Promise<string | undefined> =>
      (await coordination.readNamespacedLease({ name: leaseName, namespace: sk.namespace })).spec
        ?.holderIdentity;
    const secretSerial = async (): Promise<string> => {
      const s = await k.core.readNamespacedSecret({ name: secretName, namespace: sk.namespace });
      return serialOf(Buffer.from(s.data?.['tls.crt'] ?? '', 'base64').toString());
    };
    expect(await holder()).toBe('sk-tls-webhook-0');
    const replica = await sk.startReplica(1);
    // The follower serves what the leader stored (it copies the Secret, it does not issue).
    await waitFor(
      "both replicas to serve the Secret's certificate",
      async () => {
        const want = await secretSerial();
        const [a, b] = await Promise.all([servedSerial(sk.port), servedSerial(replica.port)]);
        return a === want && b === want ? true : undefined;
      },
      30_000,
    );
    expect(await holder()).toBe('sk-tls-webhook-0');
    // The leader goes away: the follower takes the Lease and keeps rotating.
    await sk.stopWebhook();
    await waitFor(
      'replica 1 to take the Lease',
      async () => ((await holder()) === 'sk-tls-webhook-1' ? true : undefined),
      30_000,
    );
    const before = await secretSerial();
    await waitFor(
      'the new leader to rotate and serve a new certificate',
      async () => {
        const now = await secretSerial();
        return now !== before && (await servedSerial(replica.port)) === now ? true : undefined;
      },
      30_000,
    );
  });
});
