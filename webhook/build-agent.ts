import type { ClusterDefaults } from './defaults.js';
import type { Container, SecurityContext, VolumeMount } from './k8s.js';
import { NAMES, type Plan, TOKEN_DIR } from './validate.js';
import { exitDir } from './workload-rules.js';

/** The env var carrying the agent's spec (JSON, apiVersion sidekey.io/v1). */
export const SPEC_ENV = 'SIDEKEY_SPEC';

/** Name of the agent's metrics/health port (at most 15 characters); PodMonitors select it by name. */
export const METRICS_PORT_NAME = 'sidekey-metrics';

/**
 * A security context that passes the restricted Pod Security Standard on its own, whatever the pod
 * sets: non-root uid, no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, and a
 * read-only root filesystem (the agent writes only to the tmpfs volume). Without a uid (OpenShift),
 * `runAsNonRoot` still holds: the SCC assigns a non-zero uid from the namespace's range.
 */
export function agentSecurityContext(plan: Pick<Plan, 'runAsUser' | 'runAsGroup'>): SecurityContext {
  return {
    runAsNonRoot: true,
    ...(plan.runAsUser !== undefined ? { runAsUser: plan.runAsUser } : {}),
    ...(plan.runAsGroup !== undefined ? { runAsGroup: plan.runAsGroup } : {}),
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

function base(name: string, args: string[], plan: Plan, d: ClusterDefaults): Container {
  const mounts: VolumeMount[] = [{ name: NAMES.secretsVolume, mountPath: plan.mountPath }];
  if (plan.tokens.length > 0) mounts.push({ name: NAMES.tokenVolume, mountPath: TOKEN_DIR, readOnly: true });
  for (const v of plan.agentVolumes) mounts.push({ name: v.name, mountPath: v.mountPath, readOnly: true });
  if (plan.exitFile !== undefined && name === NAMES.agent)
    mounts.push({ name: NAMES.exitVolume, mountPath: exitDir(plan.exitFile), readOnly: true });
  const resources: Record<string, Record<string, string>> = {};
  if (Object.keys(plan.resources.requests).length > 0) resources.requests = { ...plan.resources.requests };
  if (Object.keys(plan.resources.limits).length > 0) resources.limits = { ...plan.resources.limits };
  return {
    name,
    image: d.agent.image,
    imagePullPolicy: d.agent.imagePullPolicy,
    command: [...d.agent.command, 'agent', ...args],
    env: [{ name: SPEC_ENV, value: JSON.stringify(plan.spec) }, ...plan.agentEnv.map((e) => ({ ...e }))],
    resources,
    securityContext: agentSecurityContext(plan),
    volumeMounts: mounts,
  };
}

/**
 * The agent as a native sidecar: an init container with `restartPolicy: Always`. Kubernetes starts the
 * next init container (and the app) only once its startup probe passes, and `sidekey agent --probe`
 * passes only after the first complete write, so the app never starts without its files.
 */
export function nativeSidecar(plan: Plan, d: ClusterDefaults): Container {
  return {
    ...base(NAMES.agent, [], plan, d),
    ...metricsPorts(plan),
    restartPolicy: 'Always',
    startupProbe: {
      // With the listener on, the kubelet asks it (no process per probe); else the probe command.
      ...(plan.metricsPort !== undefined
        ? { httpGet: { path: '/readyz', port: METRICS_PORT_NAME } }
        : { exec: { command: [...d.agent.command, 'agent', '--probe'] } }),
      periodSeconds: 1,
      timeoutSeconds: 5,
      failureThreshold: 300,
    },
  };
}

/** The named container port of the long-running agent's listener, when it is on. */
function metricsPorts(plan: Plan): Pick<Container, 'ports'> {
  if (plan.metricsPort === undefined) return {};
  return { ports: [{ name: METRICS_PORT_NAME, containerPort: plan.metricsPort, protocol: 'TCP' }] };
}

/** The init container of classic and init-only modes: fetch and write once, then exit. */
export function initAgent(plan: Plan, d: ClusterDefaults): Container {
  return base(NAMES.init, ['--once'], plan, d);
}

/** The classic sidecar (an app container) that keeps the files current after the init container. */
export function classicSidecar(plan: Plan, d: ClusterDefaults): Container {
  return { ...base(NAMES.agent, [], plan, d), ...metricsPorts(plan) };
}
