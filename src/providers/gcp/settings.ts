import { z } from 'zod';

/**
 * `backends.gcp`: the settings of the `gcp:` provider (Google Cloud Secret Manager). Every field is
 * optional: on GKE with Workload Identity nothing needs to be set.
 */
export const gcpSettingsSchema = z
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
    timeout: z.union([z.string(), z.number()]).optional(),
  })
  .strict();

export type GcpSettings = z.output<typeof gcpSettingsSchema>;

export const GCP_DEFAULT_ENDPOINT = 'https://secretmanager.googleapis.com';
export const GCP_DEFAULT_STS = 'https://sts.googleapis.com';
export const GCP_DEFAULT_IAM_CREDENTIALS = 'https://iamcredentials.googleapis.com';
export const GCP_DEFAULT_METADATA_HOST = '169.254.169.254';
