import { z } from 'zod';
import { refSyntaxError, type SecretRef } from '../../refs.js';
import { defineBackend } from '../backend.js';

export const awsSettings = z
  .object({
    region: z.string().optional(),
    endpoint: z.string().optional(),
    /** Audience of the IRSA web-identity token the webhook projects (default `sts.amazonaws.com`). */
    audience: z.string().optional(),
  })
  .strict();
export type AwsSettings = z.output<typeof awsSettings>;

/** Default audience of the IRSA web-identity token (what EKS's pod identity webhook uses). */
export const AWS_DEFAULT_AUDIENCE = 'sts.amazonaws.com';

const NAME_RE = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
const ARN_RE = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$/;
const VERSION_ID_RE = /^[A-Za-z0-9-]{32,64}$/;
const STAGE_RE = /^[A-Za-z0-9_.-]{1,256}$/;

/** `aws:<name or ARN>[?stage=<label> | ?version=<VersionId>][#key]`: syntax only. */
function validateRef(ref: SecretRef, where: string): void {
  const fail = (why: string): never => {
    throw refSyntaxError(where, why);
  };
  const id = ref.locator;
  if (id.startsWith('arn:')) {
    if (!ARN_RE.test(id))
      fail('is not a Secrets Manager ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)');
  } else if (!NAME_RE.test(id)) {
    fail('is not a Secrets Manager name (letters, digits and /_+=.@-, at most 512)');
  }
  for (const [k, v] of Object.entries(ref.options)) {
    if (k === 'stage') {
      if (!STAGE_RE.test(v))
        fail('has a ?stage= that is not a staging label (like AWSCURRENT or AWSPREVIOUS)');
    } else if (k === 'version') {
      if (!VERSION_ID_RE.test(v)) fail('has a ?version= that is not a VersionId (a UUID)');
    } else {
      fail('has an unknown option (aws: accepts ?stage=<label> or ?version=<VersionId>)');
    }
  }
}

const TOKEN_PATH = 'aws-token';

/** `aws:` — AWS Secrets Manager. */
export const awsBackend = defineBackend({
  name: 'aws',
  title: 'AWS Secrets Manager',
  validateRef,
  settings: awsSettings,
  annotations: [
    {
      key: 'sidekey.io/aws-region',
      field: 'region',
      format: { pattern: /[a-z]{2}(-[a-z]+)+-[0-9]/, what: 'an AWS region such as eu-west-1' },
      doc: "AWS region (default: the SDK's, e.g. `AWS_REGION`)",
    },
    {
      key: 'sidekey.io/aws-endpoint',
      field: 'endpoint',
      format: 'url',
      doc: 'Secrets Manager endpoint URL (VPC endpoint, LocalStack)',
    },
    {
      key: 'sidekey.io/aws-audience',
      field: 'audience',
      format: 'string',
      doc: `audience of the IRSA web-identity token (default \`${AWS_DEFAULT_AUDIENCE}\`)`,
    },
    {
      key: 'sidekey.io/aws-role-arn',
      input: 'roleArn',
      format: {
        pattern: /arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}/,
        what: 'an IAM role ARN',
      },
      doc:
        'IRSA: IAM role ARN (`arn:aws:iam::<account>:role/<name>`); the agent gets `AWS_ROLE_ARN` and a ' +
        'projected web-identity token (`AWS_WEB_IDENTITY_TOKEN_FILE`) with audience `aws-audience`. ' +
        "Default: none (the SDK's default credential chain). Only valid when a secret uses an `aws:` ref",
    },
  ],
  clusterDefaults: ['region', 'endpoint', 'audience'],
  // IRSA, as EKS's pod identity webhook does it: a projected token with the AWS audience, and the SDK's
  // web-identity env. Without a role ARN the SDK's default credential chain applies (nothing to wire).
  wirePod: ({ settings, inputs, tokenDir }) => {
    if (inputs.roleArn === undefined) return undefined;
    return {
      tokens: [{ path: TOKEN_PATH, audience: settings.audience ?? AWS_DEFAULT_AUDIENCE }],
      env: [
        { name: 'AWS_ROLE_ARN', value: String(inputs.roleArn) },
        { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: `${tokenDir}/${TOKEN_PATH}` },
      ],
    };
  },
  describeIdentity: (s, ctx) => {
    const arn = ctx.agentEnv.AWS_ROLE_ARN;
    return (
      `region ${s?.region ?? '(none)'}, ` +
      (arn
        ? `IRSA role ${arn}, service account "${ctx.serviceAccount}" token with ${ctx.tokenAudience(ctx.agentEnv.AWS_WEB_IDENTITY_TOKEN_FILE)}`
        : "the SDK's default credential chain (no sidekey.io/aws-role-arn)")
    );
  },
  missingSetting: (s) =>
    s?.region
      ? undefined
      : "no AWS region is set: set sidekey.io/aws-region, or backends.aws.region in the webhook config (unless the agent's environment sets AWS_REGION)",
  load: async () => (await import('./index.js')).awsProvider,
});
