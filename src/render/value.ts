import { SkError } from '../errors.js';
import { isRecord } from '../is-record.js';
import type { SecretValue } from '../providers/types.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The structured view of a value, or undefined when it has none. A `bytes` value holding a JSON object
 * counts as a map (an AWS SecretString), the same rule `selectKey` applies to `#key`.
 */
export function asMap(value: SecretValue): Record<string, unknown> | undefined {
  if (value.kind === 'map') return value.data as Record<string, unknown>;
  const text = value.bytes.toString('utf8').trim();
  if (!text.startsWith('{')) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return isRecord(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Copy map data into plain JSON-like data: Buffers (a Kubernetes Secret's `data`) become UTF-8 strings.
 * Binary that is not UTF-8 is refused rather than mangled (the error names the key path, not the
 * bytes), or, for templates, given as base64 so one binary key does not break a template that does not
 * use it.
 */
export function toPlain(
  data: unknown,
  secretName: string,
  at = '',
  binary: 'refuse' | 'base64' = 'refuse',
): unknown {
  if (Buffer.isBuffer(data)) {
    try {
      return utf8.decode(data);
    } catch {
      if (binary === 'base64') return data.toString('base64');
      throw new SkError(
        'SK_ERR_RENDER',
        `secret "${secretName}": key "${at}" holds binary data that is not UTF-8; select it with #${at || 'key'} and format raw`,
        { where: secretName },
      );
    }
  }
  if (Array.isArray(data)) {
    return data.map((v, i) => toPlain(v, secretName, at ? `${at}.${i}` : String(i), binary));
  }
  if (isRecord(data)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(data)) out[k] = toPlain(v, secretName, at ? `${at}.${k}` : k, binary);
    return out;
  }
  return data;
}

/** A leaf value as text: strings as-is, null as empty, everything else as its JSON text. */
export function leafText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v);
}
