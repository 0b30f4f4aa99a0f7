import { secretKey } from '../src/annotations.js';
import { BACKENDS } from '../src/providers/builtin.js';
import { parseRef } from '../src/refs.js';
import type { SpecInput } from '../src/spec.js';

/**
 * Backends a spec uses without a setting they cannot work without, as warnings for `sidekey inject`
 * and `sidekey explain` (offline: the webhook cannot know what the agent's environment adds). What is
 * missing is each backend's own knowledge (`missingSetting` of its descriptor). Names the annotation
 * declaring the secret, never quotes the ref.
 */
export function backendHints(spec: SpecInput): string[] {
  const out: string[] = [];
  const settings = (spec.backends ?? {}) as Record<string, unknown>;
  for (const name of Object.keys(spec.secrets).sort()) {
    const provider = parseRef(spec.secrets[name]!.ref).provider;
    const d = BACKENDS.find((b) => b.name === provider);
    const missing = d?.missingSetting?.(settings[provider] as never);
    if (missing) out.push(`${secretKey('secret-', name)} uses ${provider}: but ${missing}`);
  }
  return out;
}
