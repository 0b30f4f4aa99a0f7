import { SkError } from '../errors.js';
import { isRecord } from '../is-record.js';
import type { SecretRef } from '../refs.js';
import type { SecretValue } from './types.js';

/**
 * Apply a ref's `#key` to a fetched value. An exact key wins over a dotted path, so a key that itself
 * contains dots (`tls.crt` in a Kubernetes Secret) works without escaping. A `bytes` value holding a
 * JSON object is parsed first (an AWS SecretString). Errors name the ref and key, never the value.
 */
export function selectKey(value: SecretValue, ref: SecretRef): SecretValue {
  if (ref.key === undefined) return value;
  let data: Readonly<Record<string, unknown>>;
  if (value.kind === 'map') {
    data = value.data;
  } else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value.bytes.toString('utf8'));
    } catch {
      throw new SkError(
        'SK_ERR_KEY_NOT_FOUND',
        `${ref.raw}: #${ref.key} given, but the secret is not a JSON object`,
        {
          where: ref.raw,
        },
      );
    }
    if (!isRecord(parsed)) {
      throw new SkError(
        'SK_ERR_KEY_NOT_FOUND',
        `${ref.raw}: #${ref.key} given, but the secret is not a JSON object`,
        {
          where: ref.raw,
        },
      );
    }
    data = parsed;
  }
  const { found, reached, at } = lookup(data, ref.key);
  if (found === undefined) {
    // Name the keys of the map the path reached (`#db.pasword` → the keys of `db`), never values.
    const where =
      at === ''
        ? `keys: ${keyList(reached)}`
        : isRecord(reached)
          ? `keys of "${at}": ${keyList(reached)}`
          : `"${at}" is not a map`;
    throw new SkError('SK_ERR_KEY_NOT_FOUND', `${ref.raw}: key "${ref.key}" not found (${where})`, {
      where: ref.raw,
    });
  }
  if (Buffer.isBuffer(found)) return { kind: 'bytes', bytes: found };
  if (isRecord(found)) return { kind: 'map', data: found };
  if (typeof found === 'string') return { kind: 'bytes', bytes: Buffer.from(found, 'utf8') };
  // numbers, booleans, arrays, null: their JSON text
  return { kind: 'bytes', bytes: Buffer.from(JSON.stringify(found), 'utf8') };
}

/**
 * The value at `key` (exact key first, then a dotted path), or undefined with the deepest map the path
 * reached and the path to it (`''`: the top level).
 */
function lookup(
  data: Readonly<Record<string, unknown>>,
  key: string,
): { found: unknown; reached: unknown; at: string } {
  if (Object.hasOwn(data, key)) return { found: data[key], reached: data, at: '' };
  let cur: unknown = data;
  const walked: string[] = [];
  for (const part of key.split('.')) {
    if (Array.isArray(cur) && /^\d+$/.test(part) && Number(part) < cur.length) {
      cur = cur[Number(part)];
    } else if (isRecord(cur) && Object.hasOwn(cur, part)) {
      cur = cur[part];
    } else {
      return { found: undefined, reached: cur, at: walked.join('.') };
    }
    walked.push(part);
  }
  return { found: cur, reached: cur, at: key };
}

/** Key names (never values) to help the user; capped so a huge secret does not flood the error. */
function keyList(data: unknown): string {
  const keys = isRecord(data) ? Object.keys(data) : [];
  const shown = keys.slice(0, 10).join(', ');
  return keys.length > 10 ? `${shown}, … ${keys.length - 10} more` : shown || 'none';
}
