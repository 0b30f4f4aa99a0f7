import { z } from 'zod';

/**
 * `backends.azure` settings (all optional). Each falls back to the environment the AKS Workload
 * Identity webhook (or sidekey's own webhook) sets, then to the cloud's default.
 */
export const azureSettingsSchema = z
  .object({
    /** Azure cloud for vault-name refs and the Entra authority: public (default), china, usgov. */
    cloud: z.enum(['public', 'china', 'usgov']).optional(),
    /** DNS suffix a vault name is completed with (`<vault>.<suffix>`); default from `cloud`. */
    vaultSuffix: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/i, 'a DNS suffix such as vault.azure.net')
      .optional(),
    /** Entra tenant (directory) id; else AZURE_TENANT_ID. */
    tenantId: z.string().optional(),
    /** Client id of the app registration or user-assigned identity; else AZURE_CLIENT_ID. */
    clientId: z.string().optional(),
    /** Entra authority host; else AZURE_AUTHORITY_HOST, else the cloud's (https://login.microsoftonline.com/). */
    authorityHost: z.string().optional(),
    /** The projected service-account token to exchange; else AZURE_FEDERATED_TOKEN_FILE. */
    tokenFile: z.string().optional(),
    /** Audience of the projected token the webhook mounts (default api://AzureADTokenExchange). */
    audience: z.string().optional(),
  })
  .strict();

export type AzureSettings = z.output<typeof azureSettingsSchema>;

/** Vault DNS suffix and Entra authority of each Azure cloud. */
export const AZURE_CLOUDS = {
  public: { vaultSuffix: 'vault.azure.net', authorityHost: 'https://login.microsoftonline.com/' },
  china: { vaultSuffix: 'vault.azure.cn', authorityHost: 'https://login.chinacloudapi.cn/' },
  usgov: { vaultSuffix: 'vault.usgovcloudapi.net', authorityHost: 'https://login.microsoftonline.us/' },
} as const;

/** The audience AKS Workload Identity's projected token carries (Entra's federated credential default). */
export const AZURE_TOKEN_AUDIENCE = 'api://AzureADTokenExchange';
