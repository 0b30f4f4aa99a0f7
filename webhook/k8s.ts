/**
 * The slice of the Kubernetes Pod API the webhook reads and writes. Objects arrive as JSON from the
 * API server (or a manifest), so every type keeps unknown fields (`[k: string]: unknown`): the webhook
 * must carry through whatever it does not understand, untouched.
 */

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  [k: string]: unknown;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
  [k: string]: unknown;
}

export interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  seccompProfile?: { type: string; localhostProfile?: string };
  [k: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: VolumeMount[];
  securityContext?: SecurityContext;
  restartPolicy?: string;
  ports?: ContainerPort[];
  [k: string]: unknown;
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
  [k: string]: unknown;
}

export interface Volume {
  name: string;
  [k: string]: unknown;
}

export interface PodSecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  fsGroup?: number;
  runAsNonRoot?: boolean;
  [k: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  securityContext?: PodSecurityContext;
  nodeSelector?: Record<string, string>;
  os?: { name?: string };
  shareProcessNamespace?: boolean;
  automountServiceAccountToken?: boolean;
  serviceAccountName?: string;
  imagePullSecrets?: { name: string }[];
  [k: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: PodSpec;
  [k: string]: unknown;
}

/** A pod template (`spec.template` of a workload). */
export interface PodTemplate {
  metadata?: ObjectMeta;
  spec?: PodSpec;
  [k: string]: unknown;
}
