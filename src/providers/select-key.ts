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
  const found = lookup(data, ref.key);
  if (found === undefined) {
    throw new SkError(
      'SK_ERR_KEY_NOT_FOUND',
      `${ref.raw}: key "${ref.key}" not found (keys: ${keyList(data)})`,
      {
        where: ref.raw,
      },
    );
  }
  if (Buffer.isBuffer(found)) return { kind: 'bytes', bytes: found };
  if (isRecord(found)) return { kind: 'map', data: found };
  if (typeof found === 'string') return { kind: 'bytes', bytes: Buffer.from(found, 'utf8') };
  // numbers, booleans, arrays, null: their JSON text
  return { kind: 'bytes', bytes: Buffer.from(JSON.stringify(found), 'utf8') };
}

function lookup(data: Readonly<Record<string, unknown>>, key: string): unknown {
  if (Object.hasOwn(data, key)) return data[key];
  let cur: unknown = data;
  for (const part of key.split('.')) {
    if (Array.isArray(cur) && /^\d+$/.test(part)) {
      cur = cur[Number(part)];
    } else if (isRecord(cur) && Object.hasOwn(cur, part)) {
      cur = cur[part];
    } else {
      return undefined;
    }
  }
  return cur;
}

/** Key names (never values) to help the user; capped so a huge secret does not flood the error. */
function keyList(data: Readonly<Record<string, unknown>>): string {
  const keys = Object.keys(data);
  const shown = keys.slice(0, 10).join(', ');
  return keys.length > 10 ? `${shown}, … ${keys.length - 10} more` : shown || 'none';
}
