import { z } from 'zod';
import { refSyntaxError, type SecretRef } from '../../refs.js';
import { defineBackend } from '../backend.js';

export const k8sSettings = z
  .object({
    namespace: z.string().optional(),
    /** Service-account token file; default the in-cluster one. */
    tokenFile: z.string().optional(),
    /** API server URL; default in-cluster config or the current kubeconfig. */
    server: z.string().optional(),
    caCert: z.string().optional(),
  })
  .strict();
export type K8sSettings = z.output<typeof k8sSettings>;

/** Secret names are DNS subdomains. */
const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** `k8s:<secret-name>[#key]`: syntax only. */
function validateRef(ref: SecretRef, where: string): void {
  const fail = (why: string): never => {
    throw refSyntaxError(where, why);
  };
  if (ref.locator.length > 253 || !NAME_RE.test(ref.locator)) {
    fail('is not a Secret name (lowercase letters, digits, - and .; k8s:<secret>#<key>)');
  }
  const opts = Object.keys(ref.options);
  if (opts.length > 0) fail("has an option; k8s: refs take none (the namespace is the pod's)");
}

/** `k8s:` — a Kubernetes Secret in the pod's own namespace, read with the pod's service account. */
export const k8sBackend = defineBackend({
  name: 'k8s',
  title: "Kubernetes Secrets in the pod's own namespace",
  validateRef,
  settings: k8sSettings,
  annotations: [],
  clusterDefaults: [],
  // The agent gets its own token with the API server's audience, the cluster CA and the namespace
  // (the in-cluster config), also when the pod sets `automountServiceAccountToken: false`.
  wirePod: ({ tokenDir, namespace }) => ({
    tokens: [{ path: 'token' }],
    projectClusterInfo: true,
    settings: {
      tokenFile: `${tokenDir}/token`,
      caCert: `${tokenDir}/ca.crt`,
      ...(namespace ? { namespace } : {}),
    },
  }),
  describeIdentity: (s, ctx) =>
    `the API server as service account "${ctx.serviceAccount}" (token with ${ctx.tokenAudience(s?.tokenFile) ?? "the pod's service-account token"})`,
  load: async () => (await import('./index.js')).k8sProvider,
});
