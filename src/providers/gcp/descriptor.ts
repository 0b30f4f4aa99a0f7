import { z } from 'zod';
import { SkError } from '../../errors.js';
import { defineBackend, durationInput } from '../backend.js';
import { parseGcpRef } from './ref.js';

/**
 * `backends.gcp`: the settings of the `gcp:` provider (Google Cloud Secret Manager). Every field is
 * optional: on GKE with Workload Identity nothing needs to be set.
 */
export const gcpSettings = z
  .object({
    /** Project of short refs (`gcp:<secret>`); default GOOGLE_CLOUD_PROJECT, the credentials file, the metadata server. */
    project: z.string().optional(),
    /** How the agent gets a Google access token; default: `federation` if `audience` is set, else `adc` if a credentials file is found, else `metadata`. */
    auth: z.enum(['metadata', 'federation', 'adc']).optional(),
    /** Workload Identity Federation provider (`//iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<p>`), the STS audience. */
    audience: z.string().optional(),
    /** Audience of the projected Kubernetes token; default `https:` + `audience` (the provider's default allowed audience). */
    tokenAudience: z.string().optional(),
    /** The Kubernetes service-account token exchanged at STS (federation); the webhook mounts it and sets this. */
    tokenFile: z.string().optional(),
    /** Google service account to impersonate (iamcredentials generateAccessToken), e.g. `app@proj.iam.gserviceaccount.com`. */
    serviceAccount: z.string().optional(),
    /** Secret Manager API base URL; default `https://secretmanager.googleapis.com`. */
    endpoint: z.string().optional(),
    /** Security Token Service base URL; default `https://sts.googleapis.com`. */
    stsEndpoint: z.string().optional(),
    /** IAM Service Account Credentials API base URL; default `https://iamcredentials.googleapis.com`. */
    iamCredentialsEndpoint: z.string().optional(),
    /** Metadata server `host[:port]`; default GCE_METADATA_HOST, else `169.254.169.254`. */
    metadataHost: z.string().optional(),
    /** Per-request timeout; default 10s. */
    timeout: durationInput.optional(),
  })
  .strict();

export type GcpSettings = z.output<typeof gcpSettings>;

export const GCP_DEFAULT_ENDPOINT = 'https://secretmanager.googleapis.com';
export const GCP_DEFAULT_STS = 'https://sts.googleapis.com';
export const GCP_DEFAULT_IAM_CREDENTIALS = 'https://iamcredentials.googleapis.com';
export const GCP_DEFAULT_METADATA_HOST = '169.254.169.254';
/** File name of the projected token for federation, in the agent's token directory. */
export const GCP_TOKEN_PATH = 'gcp-token';

const PROVIDER_RE =
  /\/\/iam\.googleapis\.com\/projects\/\d+\/locations\/global\/workloadIdentityPools\/[a-z0-9-]+\/providers\/[a-z0-9-]+/;

/** `gcp:` — Google Cloud Secret Manager. */
export const gcpBackend = defineBackend({
  name: 'gcp',
  title: 'Google Cloud Secret Manager',
  validateRef(ref, where) {
    parseGcpRef(ref, where);
  },
  settings: gcpSettings,
  annotations: [
    {
      key: 'sidekey.io/gcp-project',
      field: 'project',
      format: {
        pattern: /(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z0-9][a-z0-9-]{0,61}[a-z0-9]/,
        what: 'a project id or number',
      },
      doc: 'project of short refs `gcp:<secret>` (default: `GOOGLE_CLOUD_PROJECT`, the metadata server)',
    },
    {
      key: 'sidekey.io/gcp-audience',
      field: 'audience',
      format: {
        pattern: PROVIDER_RE,
        what: 'a workload identity pool provider name (//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER)',
      },
      doc:
        'Workload Identity Federation (clusters outside GKE): the pool provider; the agent gets a projected ' +
        'token with audience `https:` + this and exchanges it at Google STS. Default: none (GKE Workload ' +
        'Identity through the metadata server)',
    },
    {
      key: 'sidekey.io/gcp-service-account',
      field: 'serviceAccount',
      format: { pattern: /[a-z0-9._%+-]+@[a-z0-9.-]+/, what: 'a Google service account email' },
      doc: 'Google service account to impersonate (`roles/iam.workloadIdentityUser` on it for the federated identity)',
    },
    {
      key: 'sidekey.io/gcp-token-audience',
      field: 'tokenAudience',
      format: 'string',
      doc: 'audience of the projected token for federation (default `https:` + `gcp-audience`)',
    },
    {
      key: 'sidekey.io/gcp-auth',
      field: 'auth',
      format: ['metadata', 'federation', 'adc'],
      doc: 'how the agent gets a Google token (default: `federation` with `gcp-audience`, else `metadata`)',
    },
    {
      key: 'sidekey.io/gcp-endpoint',
      field: 'endpoint',
      format: 'url',
      doc: 'Secret Manager endpoint (Private Service Connect); default `https://secretmanager.googleapis.com`',
    },
    {
      key: 'sidekey.io/gcp-timeout',
      field: 'timeout',
      format: 'duration',
      doc: 'request timeout (default `10s`)',
    },
  ],
  clusterDefaults: [
    'project',
    'audience',
    'serviceAccount',
    'tokenAudience',
    'auth',
    'endpoint',
    'stsEndpoint',
    'iamCredentialsEndpoint',
    'timeout',
  ],
  // GKE Workload Identity needs nothing in the pod (the metadata server answers). Federation needs
  // the pod's service-account token with the pool provider's audience, which the agent exchanges.
  wirePod: ({ settings, tokenDir }) => {
    const federation =
      settings.auth === 'federation' || (settings.auth === undefined && settings.audience !== undefined);
    if (!federation) return undefined;
    if (settings.audience === undefined) {
      throw new SkError(
        'SK_ERR_ANNOTATION_INVALID',
        'sidekey.io/gcp-audience: required with sidekey.io/gcp-auth: federation (//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>)',
        { where: 'sidekey.io/gcp-audience' },
      );
    }
    return {
      tokens: [{ path: GCP_TOKEN_PATH, audience: settings.tokenAudience ?? `https:${settings.audience}` }],
      settings: { tokenFile: `${tokenDir}/${GCP_TOKEN_PATH}` },
    };
  },
  load: async () => (await import('./index.js')).gcpProvider,
});
