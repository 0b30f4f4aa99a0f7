import { secretKey } from '../src/annotations.js';
import { parseRef } from '../src/refs.js';
import type { SpecInput } from '../src/spec.js';

/**
 * Backends a spec uses without the setting they cannot work without, as warnings for `sidekey inject`
 * and `sidekey explain` (offline: the webhook cannot know what the agent's environment adds). A
 * `vault:` ref needs an address (the injected agent's environment has no VAULT_ADDR); an `aws:` ref
 * needs a region, unless the agent's environment provides AWS_REGION (e.g. EKS Pod Identity).
 * Names the annotation, never quotes the ref.
 */
export function backendHints(spec: SpecInput): string[] {
  const out: string[] = [];
  const vault = spec.backends?.vault as { addr?: string } | undefined;
  const aws = spec.backends?.aws as { region?: string } | undefined;
  for (const name of Object.keys(spec.secrets).sort()) {
    const provider = parseRef(spec.secrets[name]!.ref).provider;
    if (provider === 'vault' && !vault?.addr) {
      out.push(
        `${secretKey('secret-', name)} uses vault: but no Vault address is set: set sidekey.io/vault-addr, or backends.vault.addr in the webhook config`,
      );
    } else if (provider === 'aws' && !aws?.region) {
      out.push(
        `${secretKey('secret-', name)} uses aws: but no AWS region is set: set sidekey.io/aws-region, or backends.aws.region in the webhook config (unless the agent's environment sets AWS_REGION)`,
      );
    }
  }
  return out;
}
