import type { Backends } from '../../spec.js';
import type { Provider, ProviderFactory } from '../types.js';
import { gcpBackend } from './descriptor.js';
import { GcpProvider } from './provider.js';

export { GcpProvider } from './provider.js';

/** The `gcp:` provider (Google Cloud Secret Manager): the heavy part, loaded by the descriptor's `load()`. */
export const gcpProvider: ProviderFactory = {
  name: 'gcp',
  validateRef: gcpBackend.validateRef,
  create(backends: Backends): Provider {
    return new GcpProvider(backends.gcp ?? {});
  },
};
