import { ANN_STATUS, STATUS_INJECTED } from '../src/annotations.js';
import { classicSidecar, initAgent, nativeSidecar } from './build-agent.js';
import { mountIntoApp } from './build-app-containers.js';
import { agentVolumes, exitVolume, secretsVolume, tokenVolume } from './build-volumes.js';
import type { ClusterDefaults } from './defaults.js';
import type { Container, Pod, Volume } from './k8s.js';
import type { Plan } from './validate.js';

/**
 * Stage 4: the injected pod. Pure and copy-on-write: it returns a new object, copies only the objects
 * on the paths it changes, and shares everything else with `pod` (which is never modified). The diff
 * stage relies on that sharing: an unchanged subtree is the same reference and costs nothing to compare.
 * The agent goes first among the init containers, so the files exist before any other init container
 * or app container starts.
 */
/**
 * `prometheus.io/scrape|port|path` for the agent's listener, for Prometheus setups that discover pods by
 * these conventional annotations. A pod can advertise one port this way: one that already sets
 * `prometheus.io/scrape` (its app's metrics) keeps its own, and a PodMonitor scrapes the agent instead.
 */
function scrapeAnnotations(pod: Pod, plan: Plan, d: ClusterDefaults): Record<string, string> {
  if (plan.metricsPort === undefined || !d.metrics.scrapeAnnotations) return {};
  if (pod.metadata?.annotations?.['prometheus.io/scrape'] !== undefined) return {};
  return {
    'prometheus.io/scrape': 'true',
    'prometheus.io/port': String(plan.metricsPort),
    'prometheus.io/path': '/metrics',
  };
}

/** The pod's image pull secrets plus the agent image's (config `agent.imagePullSecrets`), each name once. */
function pullSecrets(pod: Pod, d: ClusterDefaults): { imagePullSecrets?: { name: string }[] } {
  const own = pod.spec?.imagePullSecrets ?? [];
  const missing = d.agent.imagePullSecrets.filter((n) => !own.some((s) => s.name === n));
  if (missing.length === 0) return {};
  return { imagePullSecrets: [...own, ...missing.map((name) => ({ name }))] };
}

export function buildPod(pod: Pod, plan: Plan, d: ClusterDefaults): Pod {
  const spec = pod.spec!;
  const volumes: Volume[] = [secretsVolume(plan)];
  const token = tokenVolume(plan);
  if (token) volumes.push(token);
  volumes.push(...agentVolumes(plan));
  if (plan.exitFile !== undefined) volumes.push(exitVolume());

  const init: Container[] = [];
  const sidecars: Container[] = [];
  if (plan.mode === 'native') init.push(nativeSidecar(plan, d));
  else init.push(initAgent(plan, d));
  if (plan.mode === 'sidecar') sidecars.push(classicSidecar(plan, d));

  return {
    ...pod,
    metadata: {
      ...pod.metadata,
      annotations: {
        ...pod.metadata?.annotations,
        ...scrapeAnnotations(pod, plan, d),
        [ANN_STATUS]: STATUS_INJECTED,
      },
    },
    spec: {
      ...spec,
      ...(plan.shareProcessNamespace ? { shareProcessNamespace: true } : {}),
      ...pullSecrets(pod, d),
      volumes: [...(spec.volumes ?? []), ...volumes],
      initContainers: [...init, ...(spec.initContainers ?? [])],
      containers: [
        ...spec.containers.map((c) => (plan.targets.includes(c.name) ? mountIntoApp(c, plan) : c)),
        ...sidecars,
      ],
    },
  };
}
