// Generates the Helm values reference in docs/install.md from the chart itself: every key of
// charts/sidekey/values.schema.json, with its type (from the schema), its default (values.yaml) and
// its description (the `# --` comment above the key in values.yaml, else the schema's description).
//
// `npm run gen:values-doc` rewrites the section; `-- --check` exits 1 when it is stale.
// test/unit/gen-values-doc.test.ts fails when the committed docs differ from what this generates.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML, { isMap, isScalar, type Node, type Pair } from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export const FILES = {
  doc: 'docs/install.md',
  schema: 'charts/sidekey/values.schema.json',
  values: 'charts/sidekey/values.yaml',
} as const;

const BEGIN = '<!-- BEGIN generated: values reference (npm run gen:values-doc) -->';
const END = '<!-- END generated: values reference -->';

type Schema = {
  type?: string | string[];
  enum?: unknown[];
  anyOf?: Schema[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
  description?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
};

/** A short type for the table: `string`, `integer (1-30)`, `Fail \| Ignore`, `list of object`, `map of string`. */
export function typeOf(s: Schema): string {
  if (s.enum) return s.enum.map((v) => (v === '' ? '""' : String(v))).join(' \\| ');
  if (s.anyOf) return [...new Set(s.anyOf.map(typeOf))].join(' or ');
  const t = Array.isArray(s.type) ? s.type.join(' or ') : (s.type ?? 'any');
  if (t === 'array') return `list of ${s.items ? typeOf(s.items) : 'any'}`;
  if (t === 'object' && !s.properties && typeof s.additionalProperties === 'object')
    return `map of ${typeOf(s.additionalProperties)}`;
  if ((t === 'integer' || t === 'number') && (s.minimum !== undefined || s.maximum !== undefined))
    return `${t} (${s.minimum ?? ''}–${s.maximum ?? ''})`;
  return t;
}

function describe(text: string | null | undefined): string {
  if (!text) return '';
  // Only `# --` comments document a key (helm-docs convention); the lines after it continue it.
  const lines = text.split('\n').map((l) => l.trim());
  const start = lines.findIndex((l) => l.startsWith('--'));
  if (start < 0) return '';
  return lines
    .slice(start)
    .join(' ')
    .replace(/^--\s*/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

function defaultOf(node: unknown): string {
  const v = YAML.isNode(node) ? (node as Node).toJSON() : node;
  if (v === undefined) return '';
  const s = JSON.stringify(v);
  return `\`${s.replace(/\|/g, '\\|')}\``;
}

interface Row {
  key: string;
  type: string;
  default: string;
  description: string;
}

function walk(
  schema: Schema,
  node: Node | null | undefined,
  prefix: string,
  rows: Row[],
  inherited = '',
): void {
  const props = schema.properties ?? {};
  const map = isMap(node) ? node : undefined;
  const pairs = (map?.items ?? []) as Pair[];
  const seen = new Set<string>();
  const order = [
    ...pairs.map((p) => String((p.key as { value?: unknown })?.value ?? p.key)),
    ...Object.keys(props).filter(
      (k) => !pairs.some((p) => String((p.key as { value?: unknown })?.value) === k),
    ),
  ];
  for (const [i, key] of order.entries()) {
    if (seen.has(key)) continue;
    seen.add(key);
    const sub = props[key] ?? {};
    const pair = pairs.find((p) => String((p.key as { value?: unknown })?.value) === key);
    let doc = pair ? describe((pair.key as Node | null)?.commentBefore) : '';
    if (!doc && pair && i === 0 && map) doc = describe(map.commentBefore ?? inherited);
    doc ||= sub.description ?? '';
    const path = prefix ? `${prefix}.${key}` : key;
    const value = pair?.value as Node | null | undefined;
    const nested = sub.properties && (!value || isMap(value)) && Object.keys(sub.properties).length > 0;
    if (nested) {
      // A block's own `# --` comment describes the block: shown on a row of its own when present.
      if (doc) rows.push({ key: path, type: 'object', default: '', description: doc });
      walk(sub, value, path, rows);
      continue;
    }
    rows.push({
      key: path,
      type: typeOf(sub),
      default: pair ? defaultOf(value === null && isScalar(pair.value) ? null : value) : '',
      description: doc,
    });
  }
}

/** The Markdown table between the markers. */
export function valuesReference(read = (f: string) => readFileSync(`${ROOT}/${f}`, 'utf8')): string {
  const schema = JSON.parse(read(FILES.schema)) as Schema;
  const values = YAML.parseDocument(read(FILES.values));
  const rows: Row[] = [];
  walk(schema, values.contents as Node, '', rows);
  // Descriptions are plain text: a pipe would end the cell, <release> would read as an HTML tag.
  const cell = (s: string) =>
    s.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\n/g, ' ');
  const lines = [
    '| key | type | default | description |',
    '|---|---|---|---|',
    ...rows.map((r) => `| \`${r.key}\` | ${r.type} | ${r.default} | ${cell(r.description)} |`),
  ];
  return `${lines.join('\n')}\n`;
}

export function generatedDoc(read = (f: string) => readFileSync(`${ROOT}/${f}`, 'utf8')): string {
  const text = read(FILES.doc);
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${FILES.doc}: the markers "${BEGIN}" … "${END}" are missing`);
  return `${text.slice(0, a + BEGIN.length)}\n${valuesReference(read)}${text.slice(b)}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const now = readFileSync(`${ROOT}/${FILES.doc}`, 'utf8');
  const want = generatedDoc();
  if (now === want) process.exit(0);
  if (process.argv.includes('--check')) {
    console.error(`${FILES.doc} is stale: run npm run gen:values-doc`);
    process.exit(1);
  }
  writeFileSync(`${ROOT}/${FILES.doc}`, want);
  console.log(`wrote ${FILES.doc}`);
}
