import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FILES, generatedDoc, typeOf, valuesReference } from '../../scripts/gen-values-doc.ts';

const ROOT = new URL('../../', import.meta.url);
const read = (f: string) => readFileSync(new URL(f, ROOT), 'utf8');

/** Every leaf key path of a JSON Schema (objects with properties are walked into). */
function schemaKeys(s: { properties?: Record<string, unknown> }, prefix = ''): string[] {
  return Object.entries(s.properties ?? {}).flatMap(([k, v]) => {
    const path = prefix ? `${prefix}.${k}` : k;
    const sub = v as { properties?: Record<string, unknown> };
    return sub.properties && Object.keys(sub.properties).length > 0 ? schemaKeys(sub, path) : [path];
  });
}

describe('the Helm values reference in docs/install.md', () => {
  it('is current (else run npm run gen:values-doc)', () => {
    expect(read(FILES.doc)).toBe(generatedDoc());
  });

  it('has a row for every key of values.schema.json', () => {
    const table = valuesReference();
    const keys = schemaKeys(JSON.parse(read(FILES.schema)));
    expect(keys.length).toBeGreaterThan(100);
    for (const k of keys) expect(table, k).toContain(`| \`${k}\` |`);
  });

  it('takes defaults from values.yaml and descriptions from its # -- comments', () => {
    const table = valuesReference();
    expect(table).toContain(
      '| `webhook.timeoutSeconds` | integer (1–30) | `5` | Seconds the API server waits for the webhook (1-30). |',
    );
    expect(table).toContain('| `tests.namespace` | string | `"default"` |');
    // A changed default shows up: the reference is generated, not copied.
    const changed = valuesReference((f) =>
      f === FILES.values ? read(f).replace('timeoutSeconds: 5', 'timeoutSeconds: 7') : read(f),
    );
    expect(changed).toContain('| `webhook.timeoutSeconds` | integer (1–30) | `7` |');
  });

  it('types read from the schema', () => {
    expect(typeOf({ enum: ['Fail', 'Ignore'] })).toBe('Fail \\| Ignore');
    expect(typeOf({ type: 'array', items: { type: 'string' } })).toBe('list of string');
    expect(typeOf({ type: 'object', additionalProperties: { type: 'string' } })).toBe('map of string');
    expect(typeOf({ type: ['object', 'null'] })).toBe('object or null');
  });
});
