import { BACKENDS } from './builtin.js';
import { ProviderRegistry } from './registry.js';
import type { ProviderFactory } from './types.js';

/**
 * The built-in providers as lazy loaders, by name (each backend descriptor's `load()`).
 * `sidekey agent`/`dev`/`run` build their registry with {@link registryFor} from the providers their
 * spec names, so an agent with `file:` refs never loads another backend's client (SDKs, HTTP
 * clients): that keeps its start time and memory small (see `npm run bench`).
 */
export const PROVIDER_LOADERS: Readonly<Record<string, () => Promise<ProviderFactory>>> = Object.freeze(
  Object.fromEntries(BACKENDS.map((d) => [d.name, () => d.load()])),
);

/**
 * A registry with only the named providers, each loaded on first use. A name that is not built in
 * gives the full registry instead, so that the unknown-provider error lists every known provider.
 */
export async function registryFor(names: Iterable<string>): Promise<ProviderRegistry> {
  let wanted = [...new Set(names)].sort();
  if (wanted.some((n) => !Object.hasOwn(PROVIDER_LOADERS, n))) wanted = Object.keys(PROVIDER_LOADERS);
  const r = new ProviderRegistry();
  for (const f of await Promise.all(wanted.map((n) => PROVIDER_LOADERS[n]!()))) r.register(f);
  return r;
}
