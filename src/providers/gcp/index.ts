import type { SecretRef } from '../../refs.js';
import type { Backends } from '../../spec.js';
import type { Provider, ProviderFactory } from '../types.js';
import { GcpProvider } from './provider.js';
import { parseGcpRef } from './ref.js';

export { GcpProvider } from './provider.js';

/** The `gcp:` provider (Google Cloud Secret Manager); see provider.ts and docs/backends.md. */
export const gcpProvider: ProviderFactory = {
  name: 'gcp',
  validateRef(ref: SecretRef, where: string): void {
    parseGcpRef(ref, where);
  },
  create(backends: Backends): Provider {
    return new GcpProvider((backends as { readonly gcp?: unknown }).gcp);
  },
};
