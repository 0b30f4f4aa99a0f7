import { describe, expect, test } from 'vitest';
import { defaultRegistry } from '../../../src/providers/index.ts';
import { PROVIDER_LOADERS, registryFor } from '../../../src/providers/lazy.ts';

describe('lazy provider loading', () => {
  test('lists exactly the providers of defaultRegistry()', async () => {
    expect(Object.keys(PROVIDER_LOADERS).sort()).toEqual(defaultRegistry().names());
    for (const [name, load] of Object.entries(PROVIDER_LOADERS)) expect((await load()).name).toBe(name);
  });

  test('registryFor holds only the named providers', async () => {
    expect((await registryFor(['file', 'file'])).names()).toEqual(['file']);
    expect((await registryFor([])).names()).toEqual([]);
  });

  test('an unknown name gives the full registry, so the error can list every provider', async () => {
    const r = await registryFor(['file', 'nope']);
    expect(r.names()).toEqual(defaultRegistry().names());
    expect(() => r.get('nope', 'secrets.a.ref')).toThrow(
      /unknown provider \(known: aws, azure, file, gcp, k8s, vault\)/,
    );
  });
});
