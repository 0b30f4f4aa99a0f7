/**
 * A plain object: not null, not an array, not a Buffer. The one guard for decoded JSON/YAML and for
 * secret values (where a Buffer is a leaf, not a map of keys).
 */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v);
}
