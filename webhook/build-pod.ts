import { ANN_STATUS, STATUS_INJECTED } from '../src/annotations.js';
import { classicSidecar, initAgent, nativeSidecar } from './build-agent.js';
import { mountIntoApp } from './build-app-containers.js';
import { secretsVolume, tokenVolume } from './build-volumes.js';
import type { ClusterDefaults } from './defaults.js';
import type { Container, Pod, Volume } from './k8s.js';
import type { Plan } from './validate.js';

/**
 * Stage 4: the injected pod. Pure: returns a new object and leaves `pod` as it was (the diff stage
 * compares the two). The agent goes first among the init containers, so the files exist before any
 * other init container or app container starts.
 */
export function buildPod(pod: Pod, plan: Plan, d: ClusterDefaults): Pod {
  const out: Pod = structuredClone(pod);
  const spec = out.spec!;
  out.metadata ??= {};
  const meta = out.metadata;

  const volumes: Volume[] = [secretsVolume(plan)];
  const token = tokenVolume(plan);
  if (token) volumes.push(token);
  spec.volumes = [...(spec.volumes ?? []), ...volumes];

  const init: Container[] = [];
  const sidecars: Container[] = [];
  if (plan.mode === 'native') init.push(nativeSidecar(plan, d));
  else init.push(initAgent(plan, d));
  if (plan.mode === 'sidecar') sidecars.push(classicSidecar(plan, d));

  spec.initContainers = [...init, ...(spec.initContainers ?? [])];
  spec.containers = [
    ...spec.containers.map((c) => (plan.targets.includes(c.name) ? mountIntoApp(c, plan) : c)),
    ...sidecars,
  ];
  if (plan.shareProcessNamespace) spec.shareProcessNamespace = true;
  meta.annotations = { ...meta.annotations, [ANN_STATUS]: STATUS_INJECTED };
  return out;
}
