import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import { type FSWatcher, watch } from 'chokidar';
import { SkError } from '../src/errors.js';
import { fingerprint } from '../src/fingerprint.js';

/** A certificate + key pair read from files. */
export interface KeyPair {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/**
 * Read the pair and check it forms a usable TLS context (the key matches the certificate). Throws
 * SK_ERR_TLS naming the file; never the key's content.
 */
export function readKeyPair(certFile: string, keyFile: string): KeyPair {
  const cert = readOne(certFile, '--tls-cert');
  const key = readOne(keyFile, '--tls-key');
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    // OpenSSL's reason (e.g. "key values mismatch") names no key material.
    throw new SkError(
      'SK_ERR_TLS',
      `${certFile} / ${keyFile}: not a usable certificate and key (${(e as Error).message})`,
      {
        where: certFile,
      },
    );
  }
  return { cert, key };
}

/**
 * Watch the cert and key files and call `onChange` with the new pair once both changed into a valid
 * pair. The parent directories are watched, not the files: a Kubernetes Secret volume updates by
 * swapping a `..data` symlink, which changes no watched file itself. Events are debounced, and a pair
 * that fails to load (half-written, key and cert from different rotations) is ignored until the next
 * event, so the server keeps serving the last good certificate.
 */
export function watchKeyPair(
  certFile: string,
  keyFile: string,
  current: KeyPair,
  onChange: (pair: KeyPair) => void,
  onError: (e: SkError) => void,
  opts: { debounceMs?: number; usePolling?: boolean } = {},
): { close(): Promise<void> } {
  let last = digest(current);
  let timer: NodeJS.Timeout | undefined;
  const dirs = [...new Set([path.dirname(path.resolve(certFile)), path.dirname(path.resolve(keyFile))])];
  const watcher: FSWatcher = watch(dirs, {
    ignoreInitial: true,
    depth: 1,
    usePolling: opts.usePolling ?? false,
    interval: 200,
  });
  const check = () => {
    timer = undefined;
    let pair: KeyPair;
    try {
      pair = readKeyPair(certFile, keyFile);
    } catch (e) {
      onError(e as SkError);
      return;
    }
    const d = digest(pair);
    if (d === last) return;
    last = d;
    onChange(pair);
  };
  // Without a listener, chokidar's 'error' event (e.g. ENOSPC: the node's inotify watch limit) is
  // thrown and ends the process; reported instead, and the server keeps serving the pair it has.
  watcher.on('error', (e) => {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    onError(
      new SkError('SK_ERR_TLS', `${dirs.join(', ')}: cannot watch for certificate changes (${code})`, {
        where: certFile,
      }),
    );
  });
  watcher.on('all', () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(check, opts.debounceMs ?? 100);
  });
  return {
    async close() {
      if (timer) clearTimeout(timer);
      await watcher.close();
    },
  };
}

function readOne(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new SkError('SK_ERR_TLS', `${flag} ${file}: cannot read (${(e as NodeJS.ErrnoException).code})`, {
      where: file,
    });
  }
}

function digest(p: KeyPair): string {
  // PEM holds no NUL, so the separator keeps cert/key splits apart.
  return fingerprint([p.cert, '\0', p.key]);
}
