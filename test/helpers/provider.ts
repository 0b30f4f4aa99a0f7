import { isSkError, type SkError } from '../../src/errors.ts';
import type { SecretValue } from '../../src/providers/types.ts';

/** Small helpers shared by the provider tests. */

/** The text of a `bytes` value (throws for a map: the test selected no key). */
export function text(v: SecretValue): string {
  if (v.kind !== 'bytes') throw new Error(`expected bytes, got ${v.kind}`);
  return v.bytes.toString('utf8');
}

/** The SkError `p` rejects with (anything else, or no rejection, fails); `check` inspects it first. */
export async function skErr(p: Promise<unknown>, check?: (e: SkError) => void): Promise<SkError> {
  try {
    await p;
  } catch (e) {
    if (isSkError(e)) {
      check?.(e);
      return e;
    }
    throw e;
  }
  throw new Error('expected an SkError');
}
