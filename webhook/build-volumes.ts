import type { Volume } from './k8s.js';
import { NAMES, type Plan } from './validate.js';

/** Token lifetime: the kubelet refreshes a projected token at 80 % of it. */
export const TOKEN_EXPIRATION_SECONDS = 3600;

/**
 * The memory-backed volume the agent writes into and app containers read: tmpfs, so secrets never
 * touch the node's disk; `sizeLimit` because tmpfs counts against the pod's memory.
 */
export function secretsVolume(plan: Pick<Plan, 'tmpfsSize'>): Volume {
  return { name: NAMES.secretsVolume, emptyDir: { medium: 'Memory', sizeLimit: plan.tmpfsSize } };
}

/**
 * The agent's own projected service-account token(s), with the audience each backend expects; plus
 * ca.crt and the namespace when a backend needs in-cluster settings. Undefined when no backend
 * needs a token.
 */
export function tokenVolume(plan: Pick<Plan, 'tokens' | 'projectClusterInfo'>): Volume | undefined {
  if (plan.tokens.length === 0) return undefined;
  const sources: Record<string, unknown>[] = plan.tokens.map((t) => ({
    serviceAccountToken: {
      path: t.path,
      expirationSeconds: t.expirationSeconds ?? TOKEN_EXPIRATION_SECONDS,
      ...(t.audience !== undefined ? { audience: t.audience } : {}),
    },
  }));
  if (plan.projectClusterInfo) {
    sources.push(
      { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      {
        downwardAPI: {
          items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }],
        },
      },
    );
  }
  return { name: NAMES.tokenVolume, projected: { defaultMode: 0o444, sources } };
}

/** Backends' extra volumes for the agent (pod wiring). */
export function agentVolumes(plan: Pick<Plan, 'agentVolumes'>): Volume[] {
  return plan.agentVolumes.map((v) => ({ name: v.name, ...v.source }) as Volume);
}

/**
 * The small shared volume of `sidekey.io/exit-file`: the app writes the file when it is done, the
 * classic sidecar sees it and exits 0, so a run-to-completion pod completes.
 */
export function exitVolume(): Volume {
  return { name: NAMES.exitVolume, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } };
}
