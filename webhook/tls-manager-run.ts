import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { parseDuration } from '../src/duration.js';
import { SkError } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { TlsManager } from './tls-manager.js';

/** The `sidekey webhook` options of self-managed TLS (all strings, as commander hands them over). */
export interface SelfManagedTlsCliOptions {
  tlsSelfManaged?: boolean;
  tlsSecret?: string;
  tlsLease?: string;
  webhookConfig?: string;
  service?: string;
  namespace?: string;
  /** Comma-separated extra DNS names / IPs of the serving certificate. */
  tlsHosts?: string;
  tlsCaValidity?: string;
  tlsCertValidity?: string;
  tlsRenewAt?: string;
  tlsSyncInterval?: string;
  tlsLeaseDuration?: string;
  tlsCert: string;
  tlsKey: string;
}

/**
 * Start the self-managed TLS manager for `sidekey webhook --tls-self-managed` and resolve once the
 * certificate files exist, so that the server can load them. Uses the in-cluster service account
 * (or KUBECONFIG outside a cluster, e.g. a webhook beside a local API server).
 */
export async function startSelfManagedTls(o: SelfManagedTlsCliOptions): Promise<TlsManager> {
  const need = (value: string | undefined, flag: string): string => {
    if (!value)
      throw new SkError('SK_ERR_CLI_USAGE', `${flag} is required with --tls-self-managed`, { where: flag });
    return value;
  };
  const namespace = need(o.namespace ?? process.env.POD_NAMESPACE, '--namespace');
  const service = need(o.service, '--service');
  const ms = (v: string | undefined, flag: string): number | undefined =>
    v === undefined ? undefined : parseDuration(v, flag);
  const renewAt = o.tlsRenewAt === undefined ? undefined : Number(o.tlsRenewAt);
  if (renewAt !== undefined && !(renewAt > 0 && renewAt < 1)) {
    // Checked here too, so the message quotes what was typed rather than NaN.
    throw new SkError(
      'SK_ERR_CLI_USAGE',
      `--tls-renew-at: "${o.tlsRenewAt}" is not a fraction between 0 and 1`,
      {
        where: '--tls-renew-at',
      },
    );
  }
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const log = createLogger({ name: 'sidekey-webhook' });
  const manager = new TlsManager({
    kubeConfig: kc,
    namespace,
    secretName: o.tlsSecret ?? `${service}-tls`,
    leaseName: o.tlsLease ?? `${service}-tls-writer`,
    webhookConfigName: need(o.webhookConfig, '--webhook-config'),
    serviceName: service,
    extraHosts: (o.tlsHosts ?? '')
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean),
    certFile: o.tlsCert,
    keyFile: o.tlsKey,
    identity: process.env.POD_NAME || `${hostname()}-${process.pid}`,
    caValidityMs: ms(o.tlsCaValidity, '--tls-ca-validity'),
    certValidityMs: ms(o.tlsCertValidity, '--tls-cert-validity'),
    renewAt,
    syncIntervalMs: ms(o.tlsSyncInterval, '--tls-sync-interval'),
    leaseDurationMs: ms(o.tlsLeaseDuration, '--tls-lease-duration'),
    log,
  });
  await manager.start();
  return manager;
}
