// Generates the parts of docs and chart that list backends, from the backend descriptors
// (src/providers/<name>/descriptor.ts, listed in src/providers/builtin.ts):
//
// - docs/annotations.md: the backend annotation table;
// - charts/sidekey/values.schema.json: `properties.backends` (the cluster defaults' JSON Schema);
// - charts/sidekey/values.yaml: the `backends:` defaults block;
// - docs/install.md: the values reference (scripts/gen-values-doc.ts), which lists those keys too.
//
// `npm run gen:backends` rewrites them; `npm run gen:backends -- --check` exits 1 when one is stale.
// test/unit/gen-backends.test.ts fails when a committed file differs from what this generates.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  type BackendDescriptor,
  clusterDefaultsSchema,
  type SettingFormat,
  settingFormatText,
} from '../src/providers/backend.ts';
import { BACKENDS } from '../src/providers/builtin.ts';
import { generatedDoc as generatedValuesDoc, FILES as VALUES_DOC_FILES } from './gen-values-doc.ts';

const VALUES_DOC = VALUES_DOC_FILES.doc;

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export const FILES = {
  annotationsDoc: 'docs/annotations.md',
  chartSchema: 'charts/sidekey/values.schema.json',
  chartValues: 'charts/sidekey/values.yaml',
} as const;

const MD_BEGIN = '<!-- BEGIN generated: backend annotations (npm run gen:backends) -->';
const MD_END = '<!-- END generated: backend annotations -->';
const YAML_BEGIN = '# BEGIN generated: backend defaults (npm run gen:backends)';
const YAML_END = '# END generated: backend defaults';

const descriptors = BACKENDS as readonly BackendDescriptor[];

/** Replace the text between two marker lines (markers kept); throws if they are missing. */
function between(text: string, begin: string, end: string, body: string, file: string): string {
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${file}: the markers "${begin}" … "${end}" are missing`);
  return `${text.slice(0, a + begin.length)}\n${body}${text.slice(b)}`;
}

function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The backend annotation table of docs/annotations.md. */
export function annotationTable(): string {
  const lines = ['| annotation | sets | cluster default | format | what |', '|---|---|---|---|---|'];
  for (const d of descriptors) {
    for (const r of d.annotations) {
      const sets = r.field !== undefined ? `\`backends.${d.name}.${r.field}\`` : 'pod wiring only';
      const cluster = r.field !== undefined && d.clusterDefaults.includes(r.field) ? 'yes' : '—';
      lines.push(
        `| \`${r.key}\` | ${sets} | ${cluster} | ${settingFormatText(r.format)} | ${mdCell(r.doc)} |`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

type Json = Record<string, unknown>;

/** Helm values leave a setting empty (`""`) to mean unset: every string schema also accepts "". */
function allowEmpty(s: Json): Json {
  if (Array.isArray(s.enum)) return { ...s, enum: ['', ...s.enum] };
  if (s.type !== 'string' || typeof s.pattern !== 'string') return s;
  const p = s.pattern;
  const inner =
    /^\^\(\?:(.*)\)\$$/.exec(p)?.[1] ?? (p.startsWith('^') && p.endsWith('$') ? p.slice(1, -1) : undefined);
  return { ...s, pattern: inner !== undefined ? `^(?:${inner})?$` : `^$|${p}` };
}

/** `properties.backends` of the chart's values.schema.json. */
export function chartBackendsSchema(): Json {
  const properties: Json = {};
  for (const d of descriptors) {
    if (d.clusterDefaults.length === 0) continue;
    const js = z.toJSONSchema(clusterDefaultsSchema(d), { io: 'input' }) as Json;
    const props = js.properties as Record<string, Json>;
    properties[d.name] = {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(Object.entries(props).map(([k, v]) => [k, allowEmpty(v)])),
    };
  }
  return { type: 'object', additionalProperties: false, properties };
}

function yamlDefault(format: SettingFormat | undefined): string {
  return format === 'boolean' ? 'false' : '""';
}

/** The `backends:` block of the chart's values.yaml. */
export function chartValuesBlock(): string {
  const lines = [
    '# -- Backend defaults for the agent; pod annotations (sidekey.io/<backend>-*) override them.',
    '# Empty values are left out of the config file. One block per backend, from its descriptor.',
    'backends:',
  ];
  for (const d of descriptors) {
    if (d.clusterDefaults.length === 0) continue;
    lines.push(`  ${d.name}:`);
    for (const field of d.clusterDefaults) {
      const row = d.annotations.find((r) => r.field === field);
      if (row) lines.push(`    # -- ${row.doc.replace(/`/g, '')} (${row.key}).`);
      lines.push(`    ${field}: ${yamlDefault(row?.format)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Every generated file: its path and the content it must have. */
export function generatedFiles(read = (f: string) => readFileSync(`${ROOT}/${f}`, 'utf8')) {
  const doc = between(read(FILES.annotationsDoc), MD_BEGIN, MD_END, annotationTable(), FILES.annotationsDoc);
  const schema = JSON.parse(read(FILES.chartSchema)) as Json;
  (schema.properties as Json).backends = chartBackendsSchema();
  const values = between(
    read(FILES.chartValues),
    YAML_BEGIN,
    YAML_END,
    chartValuesBlock(),
    FILES.chartValues,
  );
  const schemaText = `${JSON.stringify(schema, null, 2)}\n`;
  // The values reference in docs/install.md lists the backends' keys too: regenerated with them.
  const installDoc = generatedValuesDoc((f) =>
    f === FILES.chartSchema ? schemaText : f === FILES.chartValues ? values : read(f),
  );
  return [
    { path: FILES.annotationsDoc, content: doc },
    { path: FILES.chartSchema, content: schemaText },
    { path: FILES.chartValues, content: values },
    { path: VALUES_DOC, content: installDoc },
  ];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const f of generatedFiles()) {
    const now = readFileSync(`${ROOT}/${f.path}`, 'utf8');
    if (now === f.content) continue;
    stale++;
    if (check) console.error(`${f.path} is stale: run npm run gen:backends`);
    else {
      writeFileSync(`${ROOT}/${f.path}`, f.content);
      console.log(`wrote ${f.path}`);
    }
  }
  if (check && stale > 0) process.exit(1);
}
