import { createPrivateKey, X509Certificate } from 'node:crypto';
import { AzureFailure } from './failure.js';

/**
 * Certificate-backed secrets. Key Vault keeps a certificate's key and chain as a secret whose content
 * type is `application/x-pem-file` (PEM text) or `application/x-pkcs12` (base64 PKCS#12, no
 * password). Both become the same map, so a ref picks a part with `#key`:
 *
 * - `key`: the private key, PKCS#8 PEM (absent when the secret has none);
 * - `cert`: the leaf certificate (the one matching the key), PEM;
 * - `chain`: the leaf followed by the other certificates, PEM (what a TLS server serves);
 * - `ca`: the other certificates only, PEM (empty when there are none);
 * - `pem`: key and chain in one PEM file (for PEM secrets: the secret exactly as stored).
 *
 * Errors never quote the content.
 */
export const PEM_CONTENT_TYPE = 'application/x-pem-file';
export const PKCS12_CONTENT_TYPE = 'application/x-pkcs12';

export type CertMap = { key?: string; cert: string; chain: string; ca: string; pem: string };

const BLOCK_RE = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END \1-----/g;

/** A PEM bundle (key + certificates, in any order) as the certificate map. */
export function fromPem(text: string): CertMap {
  const keys: string[] = [];
  const certs: string[] = [];
  for (const m of text.matchAll(BLOCK_RE)) {
    const label = m[1]!;
    if (label === 'CERTIFICATE') certs.push(m[0]);
    else if (label.endsWith('PRIVATE KEY')) keys.push(m[0]);
  }
  if (certs.length === 0)
    throw new AzureFailure('SK_ERR_SOURCE_UNREADABLE', 'the PEM secret holds no certificate');
  if (keys.length > 1)
    throw new AzureFailure('SK_ERR_SOURCE_UNREADABLE', 'the PEM secret holds more than one private key');
  let key: string | undefined;
  if (keys[0] !== undefined) {
    try {
      key = createPrivateKey(keys[0]).export({ type: 'pkcs8', format: 'pem' }).toString();
    } catch {
      throw new AzureFailure(
        'SK_ERR_SOURCE_UNREADABLE',
        "the PEM secret's private key cannot be read (encrypted, or not a key)",
      );
    }
  }
  const x509 = certs.map((c) => {
    try {
      return new X509Certificate(c);
    } catch {
      throw new AzureFailure(
        'SK_ERR_SOURCE_UNREADABLE',
        'the PEM secret holds a certificate that does not parse',
      );
    }
  });
  return assemble(key, x509, text);
}

/** A base64 PKCS#12 (Key Vault's: no password) as the certificate map; node-forge is loaded only here. */
export async function fromPkcs12(base64: string): Promise<CertMap> {
  const clean = base64.replace(/\s+/g, '');
  const der = Buffer.from(clean, 'base64');
  if (der.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(clean))
    throw new AzureFailure('SK_ERR_SOURCE_UNREADABLE', 'the PKCS#12 secret is not base64');
  const forge = (await import('node-forge')).default;
  let p12: import('node-forge').pkcs12.Pkcs12Pfx;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, '');
  } catch {
    throw new AzureFailure(
      'SK_ERR_SOURCE_UNREADABLE',
      "the PKCS#12 secret does not parse, or has a password (Key Vault's own certificate secrets have none)",
    );
  }
  const toDer = (a: import('node-forge').asn1.Asn1) => Buffer.from(forge.asn1.toDer(a).getBytes(), 'binary');
  const keys: Buffer[] = [];
  const certs: X509Certificate[] = [];
  try {
    for (const type of [forge.pki.oids.pkcs8ShroudedKeyBag!, forge.pki.oids.keyBag!]) {
      for (const bag of p12.getBags({ bagType: type })[type] ?? []) {
        // forge decodes only RSA keys; others (EC) come as their PrivateKeyInfo ASN.1.
        const info = bag.key
          ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key))
          : (bag as { asn1?: import('node-forge').asn1.Asn1 }).asn1;
        if (info) keys.push(toDer(info));
      }
    }
    const certType = forge.pki.oids.certBag!;
    for (const bag of p12.getBags({ bagType: certType })[certType] ?? []) {
      const asn1 = bag.cert
        ? forge.pki.certificateToAsn1(bag.cert)
        : (bag as { asn1?: import('node-forge').asn1.Asn1 }).asn1;
      if (asn1) certs.push(new X509Certificate(toDer(asn1)));
    }
  } catch {
    throw new AzureFailure(
      'SK_ERR_SOURCE_UNREADABLE',
      'the PKCS#12 secret holds a key or certificate that does not parse',
    );
  }
  if (certs.length === 0)
    throw new AzureFailure('SK_ERR_SOURCE_UNREADABLE', 'the PKCS#12 secret holds no certificate');
  if (keys.length > 1)
    throw new AzureFailure('SK_ERR_SOURCE_UNREADABLE', 'the PKCS#12 secret holds more than one private key');
  let key: string | undefined;
  if (keys[0] !== undefined) {
    try {
      key = createPrivateKey({ key: keys[0], format: 'der', type: 'pkcs8' })
        .export({ type: 'pkcs8', format: 'pem' })
        .toString();
    } catch {
      throw new AzureFailure('SK_ERR_SOURCE_UNREADABLE', "the PKCS#12 secret's private key cannot be read");
    }
  }
  return assemble(key, certs, undefined);
}

function assemble(key: string | undefined, certs: X509Certificate[], original: string | undefined): CertMap {
  let leafAt = 0;
  if (key !== undefined) {
    const k = createPrivateKey(key);
    const i = certs.findIndex((c) => {
      try {
        return c.checkPrivateKey(k);
      } catch {
        return false;
      }
    });
    if (i < 0)
      throw new AzureFailure(
        'SK_ERR_SOURCE_UNREADABLE',
        'no certificate in the secret matches its private key',
      );
    leafAt = i;
  }
  const pem = (c: X509Certificate) => (c.toString().endsWith('\n') ? c.toString() : `${c.toString()}\n`);
  const leaf = certs[leafAt]!;
  const rest = certs.filter((_, i) => i !== leafAt);
  const chain = [leaf, ...rest].map(pem).join('');
  const out: CertMap = {
    cert: pem(leaf),
    chain,
    ca: rest.map(pem).join(''),
    pem: original ?? `${key ?? ''}${chain}`,
  };
  if (key !== undefined) out.key = key;
  return out;
}
