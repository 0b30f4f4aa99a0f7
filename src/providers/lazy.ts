import { ProviderRegistry } from './registry.js';
import type { ProviderFactory } from './types.js';

/**
 * The built-in providers as lazy loaders, by name. `sidekey agent`/`dev`/`run` build their registry
 * with {@link registryFor} from the providers their spec names, so an agent with `file:` refs never
 * loads the AWS SDK, the Kubernetes client or the Vault client: that keeps its start time and memory
 * small (see `npm run bench`). Keep in step with `defaultRegistry()` in index.ts
 * (test/unit/providers/lazy.test.ts checks both list the same providers).
 */
export const PROVIDER_LOADERS: Readonly<Record<string, () => Promise<ProviderFactory>>> = {
  file: async () => (await import('./file.js')).fileProvider,
  vault: async () => (await import('./vault.js')).vaultProvider,
  aws: async () => (await import('./aws.js')).awsProvider,
  k8s: async () => (await import('./k8s.js')).k8sProvider,
};

/**
 * A registry with only the named providers, each loaded on first use. A name that is not built in
 * gives the full registry instead, so that the unknown-provider error lists every known provider.
 */
export async function registryFor(names: Iterable<string>): Promise<ProviderRegistry> {
  const wanted = [...new Set(names)].sort();
  if (wanted.some((n) => !Object.hasOwn(PROVIDER_LOADERS, n))) {
    return (await import('./index.js')).defaultRegistry();
  }
  const r = new ProviderRegistry();
  for (const f of await Promise.all(wanted.map((n) => PROVIDER_LOADERS[n]!()))) r.register(f);
  return r;
}
