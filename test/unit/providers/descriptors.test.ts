import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isSkError } from '../../../src/errors.js';
import { clusterDefaultsSchema, parseSettingValue } from '../../../src/providers/backend.js';
import { BACKENDS } from '../../../src/providers/builtin.js';
import { parseRef } from '../../../src/refs.js';
import { parseWebhookConfig } from '../../../webhook/config.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');

/** Static (value) imports of a module: what loading it loads. `import type` is erased, dynamic ones lazy. */
function staticImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?\sfrom\s+'([^']+)'/gms))
    out.push(m[1]!);
  for (const m of text.matchAll(/^import\s+'([^']+)'/gm)) out.push(m[1]!);
  return out;
}

/** Every package a module loads, following its relative imports. */
function packagesLoadedBy(entry: string): Set<string> {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const walk = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of staticImports(file)) {
      if (spec.startsWith('.')) walk(path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts'));
      else packages.add(spec);
    }
  };
  walk(path.join(ROOT, entry));
  return packages;
}

describe('backend descriptors', () => {
  it('names are unique lowercase words, and load() gives the provider of the same name and ref check', async () => {
    const names = BACKENDS.map((d) => d.name);
    expect(new Set(names).size).toBe(names.length);
    for (const d of BACKENDS) {
      expect(d.name).toMatch(/^[a-z][a-z0-9]*$/);
      const f = await d.load();
      expect(f.name).toBe(d.name);
      expect(f.validateRef).toBe(d.validateRef);
    }
  });

  it.each(BACKENDS.map((d) => [d.name, d]))(
    '%s: annotation rows and cluster defaults fit its settings',
    (_n, d) => {
      const fields = Object.keys(d.settings.shape);
      for (const r of d.annotations) {
        expect(r.key.startsWith(`sidekey.io/${d.name}-`), r.key).toBe(true);
        expect(
          (r.field === undefined) !== (r.input === undefined),
          `${r.key}: exactly one of field/input`,
        ).toBe(true);
        if (r.field !== undefined) expect(fields).toContain(r.field);
        expect(r.doc.length).toBeGreaterThan(0);
      }
      for (const f of d.clusterDefaults) expect(fields).toContain(f);
      // every cluster default the schema accepts is a valid setting of the spec
      expect(() => clusterDefaultsSchema(d)).not.toThrow();
    },
  );

  it('the spec, annotations and webhook config load no backend SDK (only the descriptors)', () => {
    for (const entry of [
      'src/spec.ts',
      'src/annotations.ts',
      'webhook/config.ts',
      'src/providers/builtin.ts',
    ]) {
      const pkgs = [...packagesLoadedBy(entry)].filter((p) => !p.startsWith('node:'));
      expect(pkgs.sort(), entry).toEqual(entry === 'src/providers/builtin.ts' ? ['zod'] : expect.any(Array));
      // fastest-levenshtein: the did-you-mean of unknown annotation keys (a zero-dependency string
      // function, not a backend SDK).
      for (const p of pkgs)
        expect(['yaml', 'zod', 'fastest-levenshtein'], `${entry} loads ${p}`).toContain(p);
    }
  });

  it('an annotation value and the same cluster default follow one rule', () => {
    for (const d of BACKENDS) {
      for (const r of d.annotations) {
        if (r.field === undefined || !(d.clusterDefaults as readonly string[]).includes(r.field)) continue;
        const schema = clusterDefaultsSchema(d);
        for (const raw of [
          'x',
          'https://a.example:8200',
          'https://u:p@a.example',
          '5m',
          'true',
          'kubernetes',
        ]) {
          let annotationOk = true;
          let value: unknown;
          try {
            value = parseSettingValue(r.format, r.key, raw);
          } catch (e) {
            expect(isSkError(e) && e.where).toBe(r.key);
            annotationOk = false;
          }
          const configOk = schema.safeParse({ [r.field]: annotationOk ? value : raw }).success;
          expect(configOk, `${r.key}=${raw}`).toBe(annotationOk);
        }
      }
    }
  });

  it('the webhook config takes every cluster-default field (vault timeout and revokeOnShutdown included)', () => {
    const c = parseWebhookConfig({
      backends: { vault: { timeout: '20s', revokeOnShutdown: true, addr: 'https://vault:8200' } },
    });
    expect(c.backends.vault).toEqual({ timeout: '20s', revokeOnShutdown: true, addr: 'https://vault:8200' });
    expect(() => parseWebhookConfig({ backends: { vault: { timeout: 'soon' } } })).toThrow(
      /backends\.vault\.timeout: must be a duration/,
    );
    expect(() => parseWebhookConfig({ backends: { vault: { addr: 'https://u:p@vault' } } })).toThrow(
      /backends\.vault\.addr: must be an http\(s\) URL without credentials/,
    );
    expect(() => parseWebhookConfig({ backends: { vault: { jwtFile: '/x' } } })).toThrow(
      /backends\.vault: unknown field\(s\) jwtFile/,
    );
  });

  it('refs are checked by the descriptor without loading the provider', () => {
    for (const d of BACKENDS) {
      expect(() => d.validateRef(parseRef(`${d.name}:a?bogus-option=1`, 'w'), 'w')).toThrow(/w: /);
    }
  });
});
