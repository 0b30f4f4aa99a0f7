import type YAML from 'yaml';
import { SkError } from '../src/errors.js';
import { isRecord } from '../src/is-record.js';

/**
 * The objects of one YAML/JSON document of a manifest: a `List`'s items, or the document itself;
 * none for an empty document. A document that does not parse is SK_ERR_MANIFEST_INVALID naming
 * `source` and the line (never its content).
 */
export function documentItems(doc: YAML.Document.Parsed | YAML.Document, source: string): unknown[] {
  const err = doc.errors[0];
  if (err) {
    const line = err.linePos?.[0]?.line;
    throw new SkError(
      'SK_ERR_MANIFEST_INVALID',
      `${source}${line ? `:${line}` : ''}: not valid YAML/JSON (${err.code})`,
      {
        where: source,
      },
    );
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return [];
  return isRecord(value) && value.kind === 'List' && Array.isArray(value.items) ? value.items : [value];
}
