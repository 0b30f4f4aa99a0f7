import { defaultRegistry } from '../../../src/providers/index.js';
import { ProviderRegistry } from '../../../src/providers/registry.js';
import { parseWebhookConfig, type WebhookConfigInput } from '../../../webhook/config.js';
import { createPipelineContext } from '../../../webhook/context.js';
import type { PipelineContext } from '../../../webhook/pipeline.js';

/** The real provider registry: refs in the tests are validated by the real providers. */
export function testRegistry(): ProviderRegistry {
  return defaultRegistry();
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
