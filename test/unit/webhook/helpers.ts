import { defaultRegistry } from '../../../src/providers/index.js';
import { ProviderRegistry } from '../../../src/providers/registry.js';
import { parseRef } from '../../../src/refs.js';
import { parseWebhookConfig, type WebhookConfigInput } from '../../../webhook/config.js';
import { createPipelineContext } from '../../../webhook/context.js';
import type { PipelineContext } from '../../../webhook/pipeline.js';

/**
 * The registry the webhook tests validate refs with: the real defaultRegistry(). While a backend's
 * provider has not been registered there yet, a syntax-only stand-in takes its name, so these tests
 * exercise the webhook and not the provider; once the provider lands, the real one is used.
 */
export function testRegistry(): ProviderRegistry {
  const r = defaultRegistry();
  for (const name of ['vault', 'aws', 'k8s']) {
    if (r.has(name)) continue;
    r.register({
      name,
      validateRef(ref, where) {
        parseRef(ref.raw, where);
      },
      create() {
        throw new Error(`${name}: stand-in provider cannot fetch`);
      },
    });
  }
  return r;
}

export function testContext(
  config: WebhookConfigInput = {},
  opts: { nativeSidecars?: boolean; ownNamespace?: string } = {},
): PipelineContext {
  const c = parseWebhookConfig(
    {
      agent: { image: 'ghcr.io/sidekey/sidekey:test', ...config.agent },
      ...config,
    },
    { ownNamespace: opts.ownNamespace ?? 'sidekey-system' },
  );
  return createPipelineContext(c, { nativeSidecars: opts.nativeSidecars ?? true, registry: testRegistry() });
}

export { ProviderRegistry };
