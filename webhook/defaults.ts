import type { AnnotationDefaults, InjectMode } from '../src/annotations.js';
import type { WebhookConfig } from './config.js';

/** Cluster defaults for one pod, before its annotations override them. */
export interface ClusterDefaults {
  /** Defaults for the agent spec (mount path, refresh, on-change, backends). */
  readonly spec: AnnotationDefaults;
  readonly mode: InjectMode;
  /** Whether `auto` means native sidecars on this cluster. */
  readonly nativeSidecars: boolean;
  /** `nativeSidecars: false` was configured: an explicit `sidekey.io/mode: native` is refused. */
  readonly nativeForbidden: boolean;
  readonly tmpfsSize: string;
  readonly resources: WebhookConfig['agent']['resources'];
  readonly runAsUser: number;
  readonly runAsGroup: number;
  /** OpenShift: the agent sets no uid/gid of its own (the SCC assigns them). */
  readonly openshift: boolean;
  readonly agent: Pick<WebhookConfig['agent'], 'image' | 'imagePullPolicy' | 'imagePullSecrets' | 'command'>;
  /** The agent's metrics listener: port 0 = off unless a pod sets `sidekey.io/metrics-port`. */
  readonly metrics: WebhookConfig['agent']['metrics'];
}

/**
 * Stage 2: the cluster defaults from the webhook config. Pure; the result depends only on the config
 * and the native-sidecar decision, so the server computes it once and reuses it for every request.
 */
export function clusterDefaults(config: WebhookConfig, nativeSidecars: boolean): ClusterDefaults {
  const backends: Record<string, Record<string, unknown>> = {};
  for (const [name, settings] of Object.entries(config.backends)) {
    if (settings && Object.keys(settings).length > 0) backends[name] = { ...settings };
  }
  return Object.freeze({
    spec: Object.freeze({
      mountPath: config.agent.mountPath,
      refresh: config.agent.refresh,
      onChange: config.agent.onChange,
      backends,
    }),
    mode: config.agent.mode,
    nativeSidecars,
    nativeForbidden: config.nativeSidecars === false,
    tmpfsSize: config.agent.tmpfsSize,
    resources: config.agent.resources,
    runAsUser: config.agent.runAsUser,
    runAsGroup: config.agent.runAsGroup,
    openshift: config.openshift,
    agent: {
      image: config.agent.image,
      imagePullPolicy: config.agent.imagePullPolicy,
      imagePullSecrets: config.agent.imagePullSecrets,
      command: config.agent.command,
    },
    metrics: config.agent.metrics,
  });
}
