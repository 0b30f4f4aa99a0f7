// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect metadata
// polyfill loaded first. This module is only loaded by `sidekey webhook --tls-self-managed`.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import {
  AdmissionregistrationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Lease,
  V1MicroTime,
  type V1MutatingWebhookConfiguration,
  type V1Secret,
} from '@kubernetes/client-node';
import * as x509 from '@peculiar/x509';
import { SkError } from '../src/errors.js';
import { type Logger, silentLogger } from '../src/log.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** Keys of the one Secret holding the self-managed TLS material. */
export const SECRET_KEYS = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  /** Every CA the API server must trust: the current one first, then older ones until they expire. */
  caBundle: 'ca-bundle.crt',
  cert: 'tls.crt',
  key: 'tls.key',
} as const;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** A bundle never grows past this many CAs, however often the CA is renewed. */
const MAX_BUNDLE_CAS = 4;
/** Certificates start this much in the past so that API servers with a slightly slow clock accept them. */
const CLOCK_SKEW_MS = 5 * 60_000;

/** Options of {@link TlsManager}. Durations are milliseconds. */
export interface TlsManagerOptions {
  kubeConfig: KubeConfig;
  /** Namespace of the Secret, the Lease and the Service. */
  namespace: string;
  /** Secret storing CA, serving certificate and CA bundle (created if absent and allowed). */
  secretName: string;
  /** MutatingWebhookConfiguration whose webhooks' `clientConfig.caBundle` this manager keeps current. */
  webhookConfigName: string;
  /** coordination.k8s.io Lease electing the one replica that writes. */
  leaseName: string;
  /** Service name: the certificate covers `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`. */
  serviceName: string;
  /** Extra DNS names or IP addresses for the serving certificate (e.g. 127.0.0.1 in url mode). */
  extraHosts?: readonly string[];
  /** Files the webhook server serves and hot-reloads (`--tls-cert`, `--tls-key`). */
  certFile: string;
  keyFile: string;
  /** Unique per replica (pod name); the Lease holder identity. */
  identity: string;
  caValidityMs?: number;
  certValidityMs?: number;
  /** Fraction of a certificate's validity after which it is renewed (default 2/3). */
  renewAt?: number;
  /** How often every replica re-reads the Secret and the leader checks for renewal. */
  syncIntervalMs?: number;
  leaseDurationMs?: number;
  log?: Logger;
  /** Clock, for tests of rotation. */
  now?: () => number;
}

/** What one {@link TlsManager.syncOnce} did. */
export interface TlsSyncResult {
  leader: boolean;
  /** The leader issued a new CA / a new serving certificate in this round. */
  rotatedCa: boolean;
  rotatedCert: boolean;
  /** The caBundle of the webhook configuration was patched. */
  patchedBundle: boolean;
  /** The certificate files changed on disk. */
  wroteFiles: boolean;
}

interface TlsMaterial {
  caCert: string;
  caKey: string;
  caBundle: string;
  cert: string;
  key: string;
}

const DEFAULTS = {
  caValidityMs: 3 * 365 * 86_400_000,
  certValidityMs: 90 * 86_400_000,
  renewAt: 2 / 3,
  syncIntervalMs: 30_000,
  leaseDurationMs: 15_000,
};

/**
 * Self-managed TLS for the webhook (docs/tls.md). Every replica runs one; they coordinate through the
 * Kubernetes API only:
 *
 * 1. Leader election: a coordination.k8s.io Lease; only its holder writes the Secret and the caBundle.
 * 2. The leader keeps a CA and a serving certificate in one Secret and renews each when `renewAt` of
 *    its validity has passed. A new CA is added to the bundle *before* any certificate it signed is
 *    stored, and old CAs stay in the bundle until they expire, so the API server trusts both the old
 *    and the new serving certificate throughout a rotation.
 * 3. The leader patches `caBundle` of every webhook in the MutatingWebhookConfiguration whenever it
 *    differs from the Secret's bundle (a fresh install, a `helm upgrade`, a rotation).
 * 4. Every replica, leader or not, copies the Secret's serving certificate and key to the files its
 *    server hot-reloads.
 */
export class TlsManager {
  private readonly o: Required<Omit<TlsManagerOptions, 'extraHosts' | 'log' | 'now'>> & {
    extraHosts: readonly string[];
  };
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly core: CoreV1Api;
  private readonly admission: AdmissionregistrationV1Api;
  private readonly coordination: CoordinationV1Api;
  /** Lease held until this time (our clock); 0 when not the leader. */
  private leaderUntil = 0;
  /** The other holder's lease record as last seen, and when we first saw it (our clock). */
  private observed: { record: string; at: number } | undefined;
  private written: { cert: string; key: string } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(options: TlsManagerOptions) {
    this.o = {
      ...DEFAULTS,
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
      extraHosts: options.extraHosts ?? [],
    } as TlsManager['o'];
    if (!(this.o.renewAt > 0 && this.o.renewAt < 1)) {
      throw new SkError(
        'SK_ERR_CLI_USAGE',
        `--tls-renew-at: ${this.o.renewAt} is not a fraction between 0 and 1`,
      );
    }
    if (this.o.certValidityMs > this.o.caValidityMs) {
      throw new SkError('SK_ERR_CLI_USAGE', '--tls-cert-validity must not be longer than --tls-ca-validity');
    }
    this.log = (options.log ?? silentLogger).child({ component: 'tls-manager' });
    this.now = options.now ?? Date.now;
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.admission = options.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    this.coordination = options.kubeConfig.makeApiClient(CoordinationV1Api);
  }

  /** Whether this replica currently holds the Lease. */
  isLeader(): boolean {
    return this.leaderUntil > this.now();
  }

  /**
   * Run until {@link stop}: resolves once the certificate files have been written for the first time
   * (the server can start then), retrying every second until the leader has produced them.
   */
  async start(): Promise<void> {
    this.stopped = false;
    for (;;) {
      if (this.stopped) return;
      try {
        const r = await this.serialized(() => this.syncOnce());
        if (r.wroteFiles || this.written) break;
      } catch (e) {
        this.log.warn({ err: errText(e) }, 'TLS bootstrap round failed; retrying');
      }
      await sleep(Math.min(1000, this.o.syncIntervalMs));
    }
    // The lease is renewed more often than it expires; certificates are checked on the same beat.
    const period = Math.max(10, Math.min(this.o.syncIntervalMs, Math.floor(this.o.leaseDurationMs / 3)));
    let lastFull = this.now();
    this.timer = setInterval(() => {
      void this.serialized(async () => {
        const full = this.now() - lastFull >= this.o.syncIntervalMs;
        if (full) lastFull = this.now();
        await (full ? this.syncOnce() : this.renewLeadership());
      }).catch((e: unknown) =>
        this.log.warn({ err: errText(e) }, 'TLS sync failed; keeping the current certificate'),
      );
    }, period);
    this.timer.unref();
  }

  /** Stop the timers. The Lease is left to expire, so another replica takes over within its duration. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running.catch(() => undefined);
  }

  /**
   * One round: take or renew the Lease; as the leader, create or renew the CA and serving certificate
   * and make the caBundle current; then, as every replica, write the Secret's certificate to the files.
   */
  async syncOnce(): Promise<TlsSyncResult> {
    const result: TlsSyncResult = {
      leader: false,
      rotatedCa: false,
      rotatedCert: false,
      patchedBundle: false,
      wroteFiles: false,
    };
    result.leader = await this.renewLeadership();
    let material: TlsMaterial | undefined;
    if (result.leader) {
      const r = await this.reconcileAsLeader();
      Object.assign(result, {
        rotatedCa: r.rotatedCa,
        rotatedCert: r.rotatedCert,
        patchedBundle: r.patchedBundle,
      });
      material = r.material;
    } else {
      const secret = await this.readSecret();
      material = secret ? materialOf(secret) : undefined;
    }
    if (material) result.wroteFiles = await this.writeFiles(material);
    return result;
  }

  /** Take the Lease if free or expired, renew it if ours. Returns whether we hold it now. */
  async renewLeadership(): Promise<boolean> {
    const ns = this.o.namespace;
    const name = this.o.leaseName;
    const started = this.now();
    const durationSec = Math.max(1, Math.round(this.o.leaseDurationMs / 1000));
    const mine = (lease: V1Lease | undefined): V1Lease => ({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: ns, resourceVersion: lease?.metadata?.resourceVersion },
      spec: {
        holderIdentity: this.o.identity,
        leaseDurationSeconds: durationSec,
        acquireTime:
          lease?.spec?.holderIdentity === this.o.identity && lease.spec.acquireTime
            ? new V1MicroTime(lease.spec.acquireTime)
            : new V1MicroTime(started),
        renewTime: new V1MicroTime(started),
        leaseTransitions:
          (lease?.spec?.leaseTransitions ?? 0) + (lease?.spec?.holderIdentity === this.o.identity ? 0 : 1),
      },
    });
    try {
      let lease: V1Lease | undefined;
      try {
        lease = await this.coordination.readNamespacedLease({ name, namespace: ns });
      } catch (e) {
        if (statusOf(e) !== 404) throw e;
      }
      if (!lease) {
        await this.coordination.createNamespacedLease({ namespace: ns, body: mine(undefined) });
      } else {
        const spec = lease.spec ?? {};
        const ours = spec.holderIdentity === this.o.identity;
        // Expiry is judged on our own clock, from when we first saw the holder's current record (as
        // client-go's leader election does), so clock skew between nodes cannot cause a takeover.
        const record = `${spec.holderIdentity}|${String(spec.renewTime)}|${lease.metadata?.resourceVersion}`;
        if (this.observed?.record !== record) this.observed = { record, at: started };
        const expired =
          !spec.holderIdentity ||
          started - this.observed.at >= (spec.leaseDurationSeconds ?? durationSec) * 1000;
        if (!ours && !expired) {
          this.leaderUntil = 0;
          return false;
        }
        await this.coordination.replaceNamespacedLease({ name, namespace: ns, body: mine(lease) });
        if (!ours) this.log.info({ lease: name, previous: spec.holderIdentity }, 'took the TLS writer lease');
      }
      // Counted from before the request: never believe we hold it longer than the API server does.
      this.leaderUntil = started + this.o.leaseDurationMs;
      return true;
    } catch (e) {
      this.leaderUntil = 0;
      const status = statusOf(e);
      if (status === 409) return false; // another replica won the race
      throw apiError(e, `leases/${name}`, 'get/update');
    }
  }

  /** The leader's part: renew what is due, then make the caBundle match the Secret. */
  private async reconcileAsLeader(): Promise<{
    material: TlsMaterial | undefined;
    rotatedCa: boolean;
    rotatedCert: boolean;
    patchedBundle: boolean;
  }> {
    const secret = await this.readSecret();
    const current = secret ? materialOf(secret) : undefined;
    const config = await this.readWebhookConfig();
    const now = this.now();
    let rotatedCa = false;
    let rotatedCert = false;
    let next = current;

    const ca = current ? parseCert(current.caCert) : undefined;
    if (!current || !ca || this.due(ca, now)) {
      const fresh = await this.issueCa(now);
      // Keep trusting every unexpired CA, including ones only the webhook configuration still has
      // (the Secret was deleted or reset): replicas may serve certificates they signed until they sync.
      const served = (config.webhooks ?? []).map((w) =>
        Buffer.from(w.clientConfig?.caBundle ?? '', 'base64').toString('utf8'),
      );
      const keep = [
        ...new Set([current?.caBundle ?? '', ...served].flatMap((b) => validCerts(b, now))),
      ].slice(0, MAX_BUNDLE_CAS - 1);
      next = {
        caCert: fresh.cert,
        caKey: fresh.key,
        caBundle: joinPem([fresh.cert, ...keep.filter((c) => c !== fresh.cert)]),
        cert: '',
        key: '',
      };
      rotatedCa = true;
      this.log.info(
        { tlsSecret: this.o.secretName, reason: current ? 'renewal' : 'initial' },
        'issued a new webhook CA',
      );
    }
    const material = next as TlsMaterial;
    const leaf = material.cert ? parseCert(material.cert) : undefined;
    if (rotatedCa || !leaf || this.due(leaf, now) || !(await this.signedBy(leaf, material.caCert))) {
      const issued = await this.issueServingCert(material, now);
      material.cert = issued.cert;
      material.key = issued.key;
      rotatedCert = true;
      this.log.info(
        { tlsSecret: this.o.secretName, notAfter: issued.notAfter },
        'issued a new serving certificate',
      );
    }

    // The API server must trust the new CA before any replica serves a certificate it signed.
    const patchedBundle = await this.ensureBundle(config, material.caBundle);
    if (rotatedCa || rotatedCert) {
      if (!this.isLeader()) {
        // Lost the lease while generating: the new holder decides; never write without it.
        return { material: current, rotatedCa: false, rotatedCert: false, patchedBundle };
      }
      const stored = await this.writeSecret(secret, material);
      if (!stored) return { material: undefined, rotatedCa: false, rotatedCert: false, patchedBundle };
    }
    return { material, rotatedCa, rotatedCert, patchedBundle };
  }

  private due(cert: x509.X509Certificate, now: number): boolean {
    const from = cert.notBefore.getTime() + CLOCK_SKEW_MS;
    const to = cert.notAfter.getTime();
    return now >= from + (to - from) * this.o.renewAt;
  }

  private async signedBy(leaf: x509.X509Certificate, caPem: string): Promise<boolean> {
    const ca = parseCert(caPem);
    if (!ca) return false;
    if (!this.hosts().every((h) => leafCovers(leaf, h))) return false;
    return leaf.verify({ publicKey: ca.publicKey, signatureOnly: true });
  }

  private hosts(): string[] {
    const { serviceName: svc, namespace: ns } = this.o;
    return [...new Set([svc, `${svc}.${ns}`, `${svc}.${ns}.svc`, ...this.o.extraHosts])];
  }

  private async issueCa(now: number): Promise<{ cert: string; key: string }> {
    const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=${this.o.serviceName}.${this.o.namespace} sidekey webhook CA ${new Date(now).toISOString()}`,
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(now + this.o.caValidityMs),
      keys: keys as CryptoKeyPair,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as CryptoKey),
      ],
    });
    return { cert: pemLine(cert.toString('pem')), key: await exportKey(keys.privateKey as CryptoKey) };
  }

  private async issueServingCert(
    material: TlsMaterial,
    now: number,
  ): Promise<{ cert: string; key: string; notAfter: string }> {
    const ca = parseCert(material.caCert);
    if (!ca)
      throw new SkError(
        'SK_ERR_TLS',
        `secret ${this.o.secretName}: ${SECRET_KEYS.caCert} is not a certificate`,
      );
    const caKey = await importKey(material.caKey, this.o.secretName);
    const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    // A serving certificate never outlives its CA.
    const notAfter = new Date(Math.min(now + this.o.certValidityMs, ca.notAfter.getTime()));
    const hosts = this.hosts();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${hosts[2] ?? hosts[0]}`,
      issuer: ca.subject,
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter,
      signingKey: caKey,
      publicKey: keys.publicKey as CryptoKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(
          hosts.map((h) => ({ type: isIP(h) ? ('ip' as const) : ('dns' as const), value: h })),
        ),
        await x509.AuthorityKeyIdentifierExtension.create(ca),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as CryptoKey),
      ],
    });
    return {
      cert: pemLine(cert.toString('pem')),
      key: await exportKey(keys.privateKey as CryptoKey),
      notAfter: notAfter.toISOString(),
    };
  }

  private async readSecret(): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ name: this.o.secretName, namespace: this.o.namespace });
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw apiError(e, `secrets/${this.o.secretName}`, 'get');
    }
  }

  /** Update with the read resourceVersion (optimistic concurrency), or create. False on a conflict. */
  private async writeSecret(previous: V1Secret | undefined, m: TlsMaterial): Promise<boolean> {
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        ...(previous?.metadata ?? {}),
        name: this.o.secretName,
        namespace: this.o.namespace,
        annotations: {
          ...(previous?.metadata?.annotations ?? {}),
          'sidekey.io/tls-written-by': this.o.identity,
        },
      },
      type: previous?.type ?? 'Opaque',
      data: {
        ...(previous?.data ?? {}),
        [SECRET_KEYS.caCert]: b64(m.caCert),
        [SECRET_KEYS.caKey]: b64(m.caKey),
        [SECRET_KEYS.caBundle]: b64(m.caBundle),
        [SECRET_KEYS.cert]: b64(m.cert),
        [SECRET_KEYS.key]: b64(m.key),
      },
    };
    try {
      if (previous) {
        await this.core.replaceNamespacedSecret({
          name: this.o.secretName,
          namespace: this.o.namespace,
          body,
        });
      } else {
        await this.core.createNamespacedSecret({ namespace: this.o.namespace, body });
      }
      return true;
    } catch (e) {
      if (statusOf(e) === 409) {
        this.log.info({ tlsSecret: this.o.secretName }, 'the TLS secret changed meanwhile; will re-read it');
        return false;
      }
      throw apiError(e, `secrets/${this.o.secretName}`, previous ? 'update' : 'create');
    }
  }

  private async readWebhookConfig(): Promise<V1MutatingWebhookConfiguration> {
    const name = this.o.webhookConfigName;
    try {
      return await this.admission.readMutatingWebhookConfiguration({ name });
    } catch (e) {
      throw apiError(e, `mutatingwebhookconfigurations/${name}`, 'get');
    }
  }

  /** Patch every webhook's caBundle that differs from `bundle`. Returns whether it patched. */
  private async ensureBundle(config: V1MutatingWebhookConfiguration, bundle: string): Promise<boolean> {
    const name = this.o.webhookConfigName;
    const want = b64(bundle);
    const ops = (config.webhooks ?? []).flatMap((w, i) =>
      w.clientConfig?.caBundle === want
        ? []
        : [{ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: want }],
    );
    if (ops.length === 0) return false;
    // The test op makes the patch fail instead of landing on a reordered list.
    const guarded = (config.webhooks ?? []).flatMap((w, i) => [
      { op: 'test', path: `/webhooks/${i}/name`, value: w.name },
    ]);
    try {
      await this.admission.patchMutatingWebhookConfiguration(
        { name, body: [...guarded, ...ops] },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      );
    } catch (e) {
      throw apiError(e, `mutatingwebhookconfigurations/${name}`, 'patch');
    }
    this.log.info({ webhookConfig: name, webhooks: ops.length }, 'patched the webhook caBundle');
    return true;
  }

  /** Write key and certificate atomically (rename), only when they changed. */
  private async writeFiles(m: TlsMaterial): Promise<boolean> {
    if (!m.cert || !m.key) return false;
    if (this.written && this.written.cert === m.cert && this.written.key === m.key) return false;
    if (!this.written) {
      const [cert, key] = await Promise.all([
        readFile(this.o.certFile, 'utf8').catch(() => ''),
        readFile(this.o.keyFile, 'utf8').catch(() => ''),
      ]);
      if (cert === m.cert && key === m.key) {
        this.written = { cert, key };
        return false;
      }
    }
    // Key first: a server reloading on the certificate's change then finds the matching key.
    await atomicWrite(this.o.keyFile, m.key);
    await atomicWrite(this.o.certFile, m.cert);
    this.written = { cert: m.cert, key: m.key };
    this.log.info({ certFile: this.o.certFile }, 'wrote the serving certificate');
    return true;
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.running.catch(() => undefined).then(fn);
    this.running = next;
    return next;
  }
}

function materialOf(secret: V1Secret): TlsMaterial | undefined {
  const d = secret.data ?? {};
  const get = (k: string): string => (d[k] ? Buffer.from(d[k], 'base64').toString('utf8') : '');
  const m = {
    caCert: get(SECRET_KEYS.caCert),
    caKey: get(SECRET_KEYS.caKey),
    caBundle: get(SECRET_KEYS.caBundle),
    cert: get(SECRET_KEYS.cert),
    key: get(SECRET_KEYS.key),
  };
  if (!m.caCert || !m.caKey) return undefined;
  if (!m.caBundle) m.caBundle = m.caCert;
  return m;
}

function parseCert(pem: string): x509.X509Certificate | undefined {
  try {
    return new x509.X509Certificate(pem);
  } catch {
    return undefined;
  }
}

/** The PEM certificates of a bundle that have not expired at `now`. */
function validCerts(bundle: string, now: number): string[] {
  return splitPem(bundle).filter((pem) => {
    const c = parseCert(pem);
    return c !== undefined && c.notAfter.getTime() > now;
  });
}

/** Split a PEM bundle into single certificates, normalised to `-----END…-----\n`. */
export function splitPem(bundle: string): string[] {
  return (bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (p) => `${p.replace(/\r/g, '')}\n`,
  );
}

function joinPem(certs: string[]): string {
  return certs.map(pemLine).join('');
}

function pemLine(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

function leafCovers(leaf: x509.X509Certificate, host: string): boolean {
  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
  const names = san?.names.toJSON() ?? [];
  return names.some((n) => n.value === host);
}

async function exportKey(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return pemLine(x509.PemConverter.encode(der, 'PRIVATE KEY'));
}

async function importKey(pem: string, secretName: string): Promise<CryptoKey> {
  try {
    return (await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pem), ALG, false, [
      'sign',
    ])) as CryptoKey;
  } catch {
    throw new SkError(
      'SK_ERR_TLS',
      `secret ${secretName}: ${SECRET_KEYS.caKey} is not a PKCS#8 P-256 private key`,
    );
  }
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive, as RFC 5280 requires
  return bytes.toString('hex');
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

async function atomicWrite(file: string, content: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  await rename(tmp, file);
}

function statusOf(e: unknown): number | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** A one-line SkError naming the API call; the response body (which may echo data) is not included. */
function apiError(e: unknown, resource: string, verb: string): SkError {
  if (e instanceof SkError) return e;
  const status = statusOf(e);
  const why = status ? `HTTP ${status}` : errText(e);
  const hint = status === 403 ? ' (check the chart RBAC: the webhook may only touch its own objects)' : '';
  return new SkError('SK_ERR_TLS', `self-managed TLS: ${verb} ${resource} failed: ${why}${hint}`, {
    cause: e,
  });
}

function errText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]?.slice(0, 200) ?? '';
}

/** Not unref'd: during bootstrap this wait is the only thing keeping `sidekey webhook` alive. */
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
