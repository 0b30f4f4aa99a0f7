import { defaultRegistry } from '../src/providers/index.js';
import type { ProviderRegistry } from '../src/providers/registry.js';
import { compileTemplate } from '../src/render/index.js';
import type { WebhookConfig } from './config.js';
import { clusterDefaults } from './defaults.js';
import type { PipelineContext } from './pipeline.js';

/**
 * Build the pipeline context once: cluster defaults from the config, the provider registry for ref
 * validation, the template compiler. Shared by the server and `sidekey inject`, so both run the same code.
 */
export function createPipelineContext(
  config: WebhookConfig,
  opts: { nativeSidecars: boolean; registry?: ProviderRegistry },
): PipelineContext {
  return Object.freeze({
    defaults: clusterDefaults(config, opts.nativeSidecars),
    excluded: config.excluded,
    registry: opts.registry ?? defaultRegistry(),
    compileTemplate,
  });
}
