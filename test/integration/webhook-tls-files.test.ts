import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { afterEach, describe, expect, it } from 'vitest';
import type { SkError } from '../../src/errors.ts';
import { type KeyPair, readKeyPair, watchKeyPair } from '../../webhook/tls-files.ts';

/** A self-signed P-256 pair (issued with @peculiar/x509, the TLS manager's own dependency). */
async function selfSigned(dir: string, cn: string): Promise<void> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${cn}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    keys,
    signingAlgorithm: alg,
  });
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  writeFileSync(path.join(dir, 'tls.key'), x509.PemConverter.encode(der, 'PRIVATE KEY'));
  writeFileSync(path.join(dir, 'tls.crt'), cert.toString('pem'));
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !cond() && Date.now() < end; )
    await new Promise((r) => setTimeout(r, 50));
}

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** The webhook's certificate file watch on a real directory (chokidar over inotify). */
describe('watchKeyPair', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reports a watch error (a symlink loop beside the files) instead of ending the process', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sk-tls-watch-'));
    await selfSigned(dir, 'first');
    const cert = path.join(dir, 'tls.crt');
    const key = path.join(dir, 'tls.key');
    const errors: SkError[] = [];
    const changes: KeyPair[] = [];
    const w = watchKeyPair(
      cert,
      key,
      readKeyPair(cert, key),
      (p) => changes.push(p),
      (e) => errors.push(e),
      {
        debounceMs: 10,
      },
    );
    try {
      await new Promise((r) => setTimeout(r, 300));
      // chokidar stats every new entry: a self-referencing symlink fails with ELOOP, which it emits
      // as an 'error' event (as it does ENOSPC when the node's inotify watches run out). Unheard,
      // that event is thrown and the webhook process dies.
      symlinkSync('loop', path.join(dir, 'loop'));
      await until(() => errors.length > 0);
      expect(errors[0]?.code).toBe('SK_ERR_TLS');
      expect(errors[0]?.message).toBe(`${dir}: cannot watch for certificate changes (ELOOP)`);

      // The watch goes on: a new valid pair is still picked up.
      await selfSigned(dir, 'second');
      await until(() => changes.length > 0);
      expect(changes.at(-1)?.cert.toString()).toBe(readKeyPair(cert, key).cert.toString());
    } finally {
      await w.close();
    }
  });
});
