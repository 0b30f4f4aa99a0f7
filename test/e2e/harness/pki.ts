import 'reflect-metadata';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// The harness's certificates: one CA signs the API server's serving certificate, the admin client
// certificate and the webhook's serving certificate, as a kubeadm-made cluster would.
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A PEM certificate and its PEM (PKCS#8) private key. */
export interface CertPair {
  certPem: string;
  keyPem: string;
}

/** A certificate authority able to sign leaf certificates. */
export interface Ca extends CertPair {
  sign(opts: LeafOptions): Promise<CertPair>;
}

/** What a leaf certificate is for. */
export interface LeafOptions {
  /** Distinguished name, e.g. `CN=admin, O=system:masters`. */
  subject: string;
  /** DNS names and IP addresses for serving certificates. */
  dns?: string[];
  ips?: string[];
  usage: 'server' | 'client';
  /** Validity from now; default one day. */
  validMs?: number;
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN PRIVATE KEY-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END PRIVATE KEY-----\n`;
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** Creates a fresh self-signed CA (valid one day, back-dated a minute for clock skew). */
export async function createCa(name = 'CN=sidekey-e2e-ca'): Promise<Ca> {
  const keys = await newKeys();
  const notBefore = new Date(Date.now() - 60_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name,
    keys,
    notBefore,
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return caFrom(ca, keys);
}

/** Rebuilds a CA from its PEMs (globalSetup made it; test files sign with it). */
export async function loadCa(certPem: string, keyPemText: string): Promise<Ca> {
  const ca = new x509.X509Certificate(certPem);
  const der = Buffer.from(keyPemText.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  // Node's CryptoKey type knows more key usages than the DOM lib's; the key is the same object.
  const privateKey = (await webcrypto.subtle.importKey('pkcs8', der, EC, true, ['sign'])) as CryptoKey;
  const publicKey = await ca.publicKey.export(EC, ['verify']);
  return caFrom(ca, { privateKey, publicKey });
}

async function caFrom(ca: x509.X509Certificate, keys: CryptoKeyPair): Promise<Ca> {
  const notBefore = new Date(Date.now() - 60_000);
  const sign = async (o: LeafOptions): Promise<CertPair> => {
    const leafKeys = await newKeys();
    const alt = [
      ...(o.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(o.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    const cert = await x509.X509CertificateGenerator.create({
      subject: o.subject,
      issuer: ca.subject,
      publicKey: leafKeys.publicKey,
      signingKey: keys.privateKey,
      notBefore,
      notAfter: new Date(Date.now() + (o.validMs ?? 86_400_000)),
      signingAlgorithm: EC,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([
          o.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
        ...(alt.length > 0 ? [new x509.SubjectAlternativeNameExtension(alt)] : []),
      ],
    });
    return { certPem: cert.toString('pem'), keyPem: await keyPem(leafKeys.privateKey) };
  };
  return { certPem: ca.toString('pem'), keyPem: await keyPem(keys.privateKey), sign };
}

/** An RSA key pair for the service-account token issuer (PEM: PKCS#8 private, SPKI public). */
export function serviceAccountKeys(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}
