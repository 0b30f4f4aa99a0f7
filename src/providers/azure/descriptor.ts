import { SkError } from '../../errors.js';
import { defineBackend } from '../backend.js';
import { parseAzureLocator } from './ref.js';
import { AZURE_CLOUDS, AZURE_TOKEN_AUDIENCE, azureSettingsSchema } from './settings.js';

const TOKEN_PATH = 'azure-identity-token';
const CLIENT_ID_KEY = 'sidekey.io/azure-client-id';
const TENANT_ID_KEY = 'sidekey.io/azure-tenant-id';
const GUID = {
  pattern: /[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/,
  what: 'a GUID',
};

/**
 * `azure:` — Azure Key Vault. The heavy part (HTTPS client, Entra exchange, PKCS#12) is in index.ts,
 * loaded when a spec uses `azure:` refs.
 */
export const azureBackend = defineBackend({
  name: 'azure',
  title: 'Azure Key Vault',
  validateRef(ref, where) {
    parseAzureLocator(ref, where);
  },
  settings: azureSettingsSchema,
  annotations: [
    {
      key: CLIENT_ID_KEY,
      field: 'clientId',
      format: GUID,
      doc: "AKS Workload Identity: client id of the user-assigned identity or app registration whose federated credential trusts the pod's service account (`AZURE_CLIENT_ID`)",
    },
    {
      key: TENANT_ID_KEY,
      field: 'tenantId',
      format: GUID,
      doc: 'Entra tenant (directory) id of the workload identity (`AZURE_TENANT_ID`); usually a cluster default',
    },
    {
      key: 'sidekey.io/azure-cloud',
      field: 'cloud',
      format: ['public', 'china', 'usgov'],
      doc: 'Azure cloud: vault DNS suffix and Entra authority (default `public`)',
    },
    {
      key: 'sidekey.io/azure-authority-host',
      field: 'authorityHost',
      format: 'url',
      doc: "Entra authority host (`AZURE_AUTHORITY_HOST`; default the cloud's, `https://login.microsoftonline.com/`)",
    },
    {
      key: 'sidekey.io/azure-audience',
      field: 'audience',
      format: 'string',
      doc: `audience of the projected token (default \`${AZURE_TOKEN_AUDIENCE}\`)`,
    },
  ],
  clusterDefaults: ['tenantId', 'clientId', 'cloud', 'vaultSuffix', 'authorityHost', 'audience'],
  // AKS Workload Identity, as the azure-workload-identity webhook wires a pod: a projected token with
  // the federated credential's audience, and the AZURE_* environment the agent's credential reads.
  wirePod: ({ settings, tokenDir }) => {
    const need = (v: string | undefined, key: string, field: string): string => {
      if (v) return v;
      throw new SkError(
        'SK_ERR_ANNOTATION_INVALID',
        `${key}: missing; azure: refs authenticate with AKS Workload Identity, which needs the ${field === 'clientId' ? 'client' : 'tenant'} id (set the annotation, or backends.azure.${field} in the chart's cluster defaults)`,
        { where: key },
      );
    };
    const clientId = need(settings.clientId, CLIENT_ID_KEY, 'clientId');
    const tenantId = need(settings.tenantId, TENANT_ID_KEY, 'tenantId');
    return {
      tokens: [{ path: TOKEN_PATH, audience: settings.audience ?? AZURE_TOKEN_AUDIENCE }],
      env: [
        { name: 'AZURE_CLIENT_ID', value: clientId },
        { name: 'AZURE_TENANT_ID', value: tenantId },
        { name: 'AZURE_FEDERATED_TOKEN_FILE', value: `${tokenDir}/${TOKEN_PATH}` },
        {
          name: 'AZURE_AUTHORITY_HOST',
          value: settings.authorityHost ?? AZURE_CLOUDS[settings.cloud ?? 'public'].authorityHost,
        },
      ],
    };
  },
  load: async () => (await import('./index.js')).azureProvider,
});
