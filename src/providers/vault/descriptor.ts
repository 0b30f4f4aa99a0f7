import { z } from 'zod';
import { refSyntaxError, type SecretRef } from '../../refs.js';
import { defineBackend, durationInput } from '../backend.js';

/**
 * Audience of the projected token for Vault kubernetes/jwt auth when none is configured: Vault's own,
 * so the token is useless against the API server. The Vault role must accept it (`audience=vault`).
 */
export const VAULT_DEFAULT_AUDIENCE = 'vault';

export const VAULT_AUTH_METHODS = ['kubernetes', 'jwt', 'approle', 'token'] as const;

export const vaultSettings = z
  .object({
    addr: z.string().optional(),
    /** Auth method: kubernetes (default in cluster), jwt, approle, token. */
    authMethod: z.enum(VAULT_AUTH_METHODS).optional(),
    role: z.string().optional(),
    /** Auth mount path, e.g. `auth/kubernetes` or just `kubernetes`. */
    authPath: z.string().optional(),
    namespace: z.string().optional(),
    /** File holding the JWT (kubernetes/jwt auth); default the projected service-account token. */
    jwtFile: z.string().optional(),
    /** File holding a Vault token (token auth). */
    tokenFile: z.string().optional(),
    roleIdFile: z.string().optional(),
    secretIdFile: z.string().optional(),
    caCert: z.string().optional(),
    tlsServerName: z.string().optional(),
    tlsSkipVerify: z.boolean().optional(),
    timeout: durationInput.optional(),
    /** Revoke dynamic leases when the agent stops. */
    revokeOnShutdown: z.boolean().optional(),
    /** Audience of the projected token the webhook mounts for kubernetes/jwt auth (default `vault`). */
    audience: z.string().optional(),
  })
  .strict();
export type VaultSettings = z.output<typeof vaultSettings>;

const PATH_RE = /^[A-Za-z0-9_.@:+=,~-]+(?:\/[A-Za-z0-9_.@:+=,~-]+)*\/?$/;

/** `vault:<api path>[?version=<n>][#key]`: syntax only. */
function validateRef(ref: SecretRef, where: string): void {
  const fail = (why: string): never => {
    throw refSyntaxError(where, why);
  };
  const p = ref.locator;
  if (p.startsWith('/')) fail('starts with "/"; write the API path without /v1/, e.g. secret/data/app');
  if (p.startsWith('v1/')) fail('starts with v1/; write the API path without it, e.g. secret/data/app');
  if (!PATH_RE.test(p)) fail('is not a Vault API path (letters, digits, _ . - and / between segments)');
  if (p.split('/').some((s) => s === '.' || s === '..')) fail('has a "." or ".." path segment');
  for (const [k, v] of Object.entries(ref.options)) {
    if (k !== 'version') fail('has an unknown option (vault: accepts only ?version=<n>, for KV v2)');
    if (!/^[1-9]\d{0,9}$/.test(v)) fail('has a ?version= that is not a positive integer (a KV v2 version)');
  }
}

/** `vault:` — HashiCorp Vault / OpenBao (KV v1/v2, dynamic secrets with leases, PKI). */
export const vaultBackend = defineBackend({
  name: 'vault',
  title: 'HashiCorp Vault / OpenBao',
  validateRef,
  settings: vaultSettings,
  annotations: [
    { key: 'sidekey.io/vault-addr', field: 'addr', format: 'url', doc: 'Vault/OpenBao URL' },
    { key: 'sidekey.io/vault-role', field: 'role', format: 'string', doc: 'auth role' },
    {
      key: 'sidekey.io/vault-auth-path',
      field: 'authPath',
      format: 'string',
      doc: 'auth mount, e.g. `kubernetes` or `auth/k8s-prod`',
    },
    {
      key: 'sidekey.io/vault-auth-method',
      field: 'authMethod',
      format: VAULT_AUTH_METHODS,
      doc: 'auth method (default `kubernetes`)',
    },
    {
      key: 'sidekey.io/vault-namespace',
      field: 'namespace',
      format: 'string',
      doc: 'Vault Enterprise / OpenBao namespace',
    },
    {
      key: 'sidekey.io/vault-audience',
      field: 'audience',
      format: 'string',
      doc: 'audience of the projected service-account token (default `vault`; the Vault role must list it)',
    },
    {
      key: 'sidekey.io/vault-ca-cert',
      field: 'caCert',
      format: 'path',
      doc: 'CA certificate file in the agent container',
    },
    {
      key: 'sidekey.io/vault-tls-server-name',
      field: 'tlsServerName',
      format: 'string',
      doc: 'TLS server name (SNI) to verify',
    },
    {
      key: 'sidekey.io/vault-tls-skip-verify',
      field: 'tlsSkipVerify',
      format: 'boolean',
      doc: 'skip TLS verification (testing only)',
    },
    { key: 'sidekey.io/vault-timeout', field: 'timeout', format: 'duration', doc: 'request timeout' },
    {
      key: 'sidekey.io/vault-revoke-on-shutdown',
      field: 'revokeOnShutdown',
      format: 'boolean',
      doc: 'revoke dynamic leases when the agent stops',
    },
  ],
  clusterDefaults: [
    'addr',
    'role',
    'authPath',
    'namespace',
    'authMethod',
    'audience',
    'caCert',
    'tlsServerName',
    'timeout',
    'revokeOnShutdown',
  ],
  // kubernetes/jwt auth logs in with a projected service-account token of its own (file
  // `vault-token`) whose audience is Vault's (default `vault`), never the API server's: a token Vault
  // receives cannot be replayed against the API server. Other methods read their own files.
  wirePod: ({ settings, tokenDir }) => {
    const method = settings.authMethod ?? 'kubernetes';
    if ((method === 'kubernetes' || method === 'jwt') && settings.jwtFile === undefined) {
      const path = 'vault-token';
      return {
        tokens: [{ path, audience: settings.audience ?? VAULT_DEFAULT_AUDIENCE }],
        settings: { jwtFile: `${tokenDir}/${path}` },
      };
    }
    return { settings: {} };
  },
  describeIdentity: (s, ctx) => {
    const tok = ctx.tokenAudience(s?.jwtFile);
    return (
      `${s?.addr ?? '(no address)'}, ${s?.authMethod ?? 'kubernetes'} auth at ${s?.authPath ?? 'kubernetes'}, ` +
      `${s?.role ? `role "${s.role}"` : 'no role'}` +
      (tok ? `, service account "${ctx.serviceAccount}" token with ${tok}` : '')
    );
  },
  // In a pod the agent's environment has no VAULT_ADDR: without an address it cannot start.
  missingSetting: (s) =>
    s?.addr
      ? undefined
      : 'no Vault address is set: set sidekey.io/vault-addr, or backends.vault.addr in the webhook config',
  load: async () => (await import('./index.js')).vaultProvider,
});
