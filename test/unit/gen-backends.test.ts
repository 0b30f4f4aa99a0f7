import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { chartBackendsSchema, generatedFiles } from '../../scripts/gen-backends.ts';
import { BACKENDS } from '../../src/providers/builtin.ts';

const ROOT = new URL('../../', import.meta.url);

describe('files generated from the backend descriptors', () => {
  it.each(generatedFiles().map((f) => [f.path, f.content]))(
    '%s is current (else run npm run gen:backends)',
    (path, content) => {
      expect(readFileSync(new URL(path, ROOT), 'utf8')).toBe(content);
    },
  );

  it('the chart schema has one block per backend with cluster defaults, holding exactly those fields', () => {
    const props = chartBackendsSchema().properties as Record<string, { properties: Record<string, unknown> }>;
    for (const d of BACKENDS) {
      if (d.clusterDefaults.length === 0) expect(props[d.name]).toBeUndefined();
      else expect(Object.keys(props[d.name]!.properties)).toEqual([...d.clusterDefaults]);
    }
  });
});
