import { BACKENDS } from './builtin.js';
import { ProviderRegistry } from './registry.js';

/** Every built-in provider (each descriptor's `load()`), loaded once when this module is imported. */
const FACTORIES = await Promise.all(BACKENDS.map((d) => d.load()));

/**
 * A registry with every built-in provider, loaded eagerly (the webhook, tests, benches). The agent
 * loads only the providers its spec uses: `registryFor` in lazy.ts.
 */
export function defaultRegistry(): ProviderRegistry {
  const r = new ProviderRegistry();
  for (const f of FACTORIES) r.register(f);
  return r;
}
