import { createHmac, randomBytes } from 'node:crypto';

/** Anything a fingerprint is taken of: bytes or text (UTF-8). */
export type FingerprintInput = Uint8Array | string;

/** Hex digits kept: 64 bits, plenty to tell two contents apart, short enough for logs. */
const FINGERPRINT_HEX = 16;

let processKey: Buffer | undefined;

/**
 * A short, keyed fingerprint of secret content: the first 16 hex digits of HMAC-SHA256 under a
 * random key made once per process. Used wherever content stands in for a version (the `file:`
 * provider, Vault KV v1), in the status file, and by the writer to compare files.
 *
 * Why keyed: a plain hash of a short password or PIN, shown in a log or in the world-readable status
 * file, can be reversed offline by hashing guesses. Without the key (which never leaves the process)
 * a guess cannot be checked.
 *
 * Why per process: the same content gives the same fingerprint for the life of the process, so
 * change detection works; after a restart every fingerprint differs. Nothing relies on fingerprints
 * surviving a restart: the writer re-reads the files on disk and fingerprints them with the current
 * key, so an unchanged secret is still not rewritten and the app not notified. A restarted agent
 * only reports new-looking versions for content-versioned secrets.
 *
 * An array is fingerprinted as its parts in order, with nothing between them: a caller combining
 * several parts frames them itself (lengths, separators) so that different splits cannot collide.
 */
export function fingerprint(data: FingerprintInput | readonly FingerprintInput[]): string {
  processKey ??= randomBytes(32);
  const h = createHmac('sha256', processKey);
  if (typeof data === 'string' || data instanceof Uint8Array) h.update(data);
  else for (const part of data) h.update(part);
  return h.digest('hex').slice(0, FINGERPRINT_HEX);
}
