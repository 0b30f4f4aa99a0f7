import { awsProvider } from './aws.js';
import { fileProvider } from './file.js';
import { k8sProvider } from './k8s.js';
import { ProviderRegistry } from './registry.js';
import { vaultProvider } from './vault.js';

/**
 * The built-in providers. Adding a backend = one file in this folder + one line here; the shared
 * provider contract suite (test/unit/providers/contract.ts) then runs against it.
 */
export function defaultRegistry(): ProviderRegistry {
  const r = new ProviderRegistry();
  // one line per provider:
  r.register(fileProvider);
  r.register(vaultProvider);
  r.register(awsProvider);
  r.register(k8sProvider);
  return r;
}
