import {
  ANN_CONTAINERS,
  ANN_CPU_REQUEST,
  ANN_MEMORY_REQUEST,
  ANN_METRICS_PORT,
  ANN_MOUNT_PATH,
  annotationsToSpec,
  BACKEND_SETTINGS,
  type InjectOptions,
  parseInjectOptions,
  quantityValue,
  secretKey,
} from '../src/annotations.js';
import { ErrorCollector } from '../src/error-list.js';
import { SkError } from '../src/errors.js';
import type { AgentVolume, BackendDescriptor } from '../src/providers/backend.js';
import { BACKENDS } from '../src/providers/builtin.js';
import type { ProviderRegistry } from '../src/providers/registry.js';
import { type ResolvedSpec, resolveSpec, type SpecInput } from '../src/spec.js';
import type { ClusterDefaults } from './defaults.js';
import type { Container, EnvVar, Pod } from './k8s.js';
import { agentIdentity, checkExitFile, decideMode } from './workload-rules.js';

/** Names the webhook gives to what it adds; a pod that already uses one cannot be injected. */
export const NAMES = Object.freeze({
  secretsVolume: 'sidekey-secrets',
  tokenVolume: 'sidekey-token',
  exitVolume: 'sidekey-exit',
  agent: 'sidekey-agent',
  init: 'sidekey-init',
});

/** Where the agent finds its projected service-account token(s), CA and namespace. */
export const TOKEN_DIR = '/var/run/secrets/sidekey.io/serviceaccount';

/** One projected service-account token the agent needs. */
export interface TokenSource {
  /** File name under {@link TOKEN_DIR}. */
  readonly path: string;
  /** Undefined: the API server's default audience. */
  readonly audience: string | undefined;
  /** Undefined: the webhook's default lifetime. */
  readonly expirationSeconds?: number;
}

/** Everything the build stage needs, validated. */
export interface Plan {
  /** The agent's spec (handed over as JSON in SIDEKEY_SPEC). */
  readonly spec: SpecInput;
  readonly resolved: ResolvedSpec;
  /** `auto` resolved for this cluster. */
  readonly mode: 'native' | 'sidecar' | 'init-only';
  /** App containers that get the mount and `*_FILE` env, in pod order. */
  readonly targets: readonly string[];
  readonly mountPath: string;
  readonly tmpfsSize: string;
  readonly resources: {
    readonly requests: Readonly<Record<string, string>>;
    readonly limits: Readonly<Record<string, string>>;
  };
  /** Undefined: the agent sets none (OpenShift assigns the pod's uid; the pod-level value applies). */
  readonly runAsUser: number | undefined;
  readonly runAsGroup: number | undefined;
  /**
   * A run-to-completion pod's classic sidecar stops when the app writes this file; its directory is a
   * small shared volume in the app containers and the agent.
   */
  readonly exitFile: string | undefined;
  /** Admission warnings (kubectl prints them; `sidekey inject` writes them to stderr). */
  readonly warnings: readonly string[];
  /** `on-change: signal:` outside init-only: the agent must see the app's processes. */
  readonly shareProcessNamespace: boolean;
  /** Projected tokens; empty = no token volume. */
  readonly tokens: readonly TokenSource[];
  /** Also project ca.crt and namespace next to the tokens (a backend asked for in-cluster settings). */
  readonly projectClusterInfo: boolean;
  /** Extra env of the agent containers (backends' pod wiring, e.g. IRSA). */
  readonly agentEnv: readonly EnvVar[];
  /** Extra volumes of the agent containers (backends' pod wiring). */
  readonly agentVolumes: readonly AgentVolume[];
  /** `sidekey.io/env-<name>` replacements: the app gets `<env>_FILE=<mountPath>/<file>`. */
  readonly envFiles: ReadonlyArray<{ readonly env: string; readonly path: string }>;
  /** The long-running agent's metrics/health port on the pod IP; undefined = no listener. */
  readonly metricsPort: number | undefined;
}

export interface ValidateDeps {
  readonly registry: ProviderRegistry;
  /** Template syntax check (src/render compileTemplate); throws SK_ERR_TEMPLATE_SYNTAX naming `where`. */
  readonly compileTemplate: (source: string, where: string) => void;
  /** The backends whose pod wiring applies; default the built-in ones (`BACKENDS`). Tests add more. */
  readonly backends?: readonly BackendDescriptor[];
}

/**
 * Stage 3: parse the pod's annotations over the cluster defaults and validate everything that can be
 * checked without I/O: annotation values, refs (through the provider registry), templates, file names,
 * modes, durations and container names. Pure; throws an {@link SkError} whose `where` is the
 * offending annotation.
 */
export function parseAndValidate(
  pod: Pod,
  namespace: string | undefined,
  defaults: ClusterDefaults,
  deps: ValidateDeps,
  workloadKind?: string,
): Plan {
  const ann = pod.metadata?.annotations ?? {};
  // Every mistake of the pod is reported at once: independent checks run on, each error is kept, and
  // all are thrown together (an SkErrorList) before anything that needs their results.
  const errs = new ErrorCollector();
  // The spec and options of what is valid; their mistakes are in `errs`.
  const spec = annotationsToSpec(ann, defaults.spec, errs);
  const opts = parseInjectOptions(ann, errs);
  errs.run(() => checkNamesFree(pod));
  const containers = pod.spec?.containers ?? [];

  // Refs and templates: each error names the annotation that declared it.
  const checked = errs.run(() =>
    resolveSpec(spec, {
      source: 'annotations',
      checkSecret: (s) => {
        errs.run(() => deps.registry.validateRef(s.ref, secretKey('secret-', s.name)));
        const tpl = s.template;
        if (tpl !== undefined) errs.run(() => deps.compileTemplate(tpl, secretKey('template-', s.name)));
      },
    }),
  );
  if (checked === undefined) errs.throwIfAny();
  const resolved = checked!;

  const decision = errs.run(() => decideMode(pod, opts, defaults, workloadKind));

  const names = containers.map((c) => c.name);
  let targets: string[] = names;
  if (opts.containers) {
    const missing = opts.containers.filter((n) => !names.includes(n));
    if (missing.length > 0) {
      errs.run(() => {
        throw new SkError(
          'SK_ERR_CONTAINER_UNKNOWN',
          `${ANN_CONTAINERS}: the pod has no container ${missing.map((n) => `"${n}"`).join(', ')} (containers: ${names.join(', ') || 'none'})`,
          { where: ANN_CONTAINERS },
        );
      });
    }
    targets = names.filter((n) => opts.containers!.includes(n));
  }

  const mountPath = resolved.output.dir;
  // The agent's own mounts: the API server would refuse a duplicate mount path (or the kubelet a mount
  // inside the read-only token volume) with a message that names no annotation.
  if (mountPath === TOKEN_DIR || mountPath.startsWith(`${TOKEN_DIR}/`)) {
    errs.run(() => {
      throw new SkError(
        'SK_ERR_ANNOTATION_INVALID',
        `${ANN_MOUNT_PATH}: ${mountPath} is reserved for the agent's service-account token (${TOKEN_DIR}); choose another mount path`,
        { where: ANN_MOUNT_PATH },
      );
    });
  }
  for (const c of containers) {
    if (!targets.includes(c.name)) continue;
    if ((c.volumeMounts ?? []).some((m) => m.mountPath === mountPath)) {
      errs.run(() => {
        throw new SkError(
          'SK_ERR_ANNOTATION_INVALID',
          `${ANN_MOUNT_PATH}: container "${c.name}" already mounts a volume at ${mountPath}; choose another mount path`,
          { where: ANN_MOUNT_PATH },
        );
      });
    }
  }

  const targetContainers = containers.filter((c) => targets.includes(c.name));
  const exitFile = decision?.exitFile;
  if (exitFile !== undefined) errs.run(() => checkExitFile(exitFile, mountPath, targetContainers));
  const resources = errs.run(() => agentResources(defaults, opts));

  // Identity: the agent writes files the app must read, so it runs as the app's user where known.
  const explicitModes = new Set(
    Object.entries(spec.secrets)
      .filter(([, s]) => s.mode !== undefined)
      .map(([n]) => n),
  );
  const identity = agentIdentity(pod, targetContainers, opts, defaults, resolved.secrets, explicitModes);

  const withTokens: SpecInput = structuredClone(spec);
  const planned = errs.run(() => planTokens(withTokens, resolved, opts.backendInputs, namespace, deps));
  if (planned) errs.run(() => checkVolumesFree(pod, planned.agentVolumes));
  const metricsPort =
    decision === undefined
      ? undefined
      : errs.run(() =>
          planMetricsPort(
            opts.metricsPort ?? defaults.metrics.port,
            opts.metricsPort !== undefined ? ANN_METRICS_PORT : 'agent.metrics.port (webhook config)',
            decision.mode,
            containers,
          ),
        );
  errs.throwIfAny();
  const { tokens, projectClusterInfo, agentEnv, agentVolumes } = planned!;
  const mode = decision!.mode;
  // The spec says what runs, also when init-only comes from the cluster default, not the annotation.
  if (mode === 'init-only') withTokens.agent = { ...withTokens.agent, mode: 'once' };
  // On the pod IP: Prometheus and the kubelet's probe connect from outside the pod.
  if (metricsPort !== undefined)
    withTokens.agent = { ...withTokens.agent, metrics: { port: metricsPort, address: '0.0.0.0' } };
  if (exitFile !== undefined) withTokens.agent = { ...withTokens.agent, exitFile };
  if (identity.defaultMode !== undefined)
    withTokens.output = { ...withTokens.output, defaultMode: identity.defaultMode };
  // Settings first, secrets last, as a reader expects in SIDEKEY_SPEC.
  const { secrets, ...settings } = withTokens;
  const finalSpec: SpecInput = { ...settings, secrets };

  const envFiles = resolved.secrets
    .filter((s) => s.env !== undefined)
    .map((s) => ({ env: `${s.env}_FILE`, path: `${mountPath}/${s.file}` }));

  return {
    spec: finalSpec,
    resolved,
    mode,
    targets,
    mountPath,
    tmpfsSize: opts.tmpfsSize ?? defaults.tmpfsSize,
    resources: resources!,
    runAsUser: identity.runAsUser,
    runAsGroup: identity.runAsGroup,
    exitFile,
    warnings: [...decision!.warnings, ...identity.warnings],
    shareProcessNamespace: mode !== 'init-only' && resolved.onChange.type === 'signal',
    tokens,
    projectClusterInfo,
    agentEnv,
    agentVolumes,
    envFiles,
    metricsPort,
  };
}

/**
 * The metrics port, or undefined when off (0) or in init-only mode (no long-running agent). A port an
 * app container declares is refused: the agent's bind would fail inside the shared network namespace.
 */
function planMetricsPort(
  port: number,
  where: string,
  mode: Plan['mode'],
  containers: readonly Container[],
): number | undefined {
  if (port === 0 || mode === 'init-only') return undefined;
  for (const c of containers) {
    if ((c.ports ?? []).some((p) => p.containerPort === port && (p.protocol ?? 'TCP') === 'TCP')) {
      throw new SkError(
        'SK_ERR_ANNOTATION_INVALID',
        `${where}: port ${port} is already declared by container "${c.name}"; set ${ANN_METRICS_PORT} to another port`,
        { where },
      );
    }
  }
  return port;
}

/**
 * Requests and limits: annotations over the config. A request above its limit would make the API
 * server refuse the pod with a message that names no annotation; so a request the pod set is checked
 * against the limit (naming the annotation), and a default request above a limit the pod set is
 * lowered to that limit.
 */
function agentResources(defaults: ClusterDefaults, opts: InjectOptions): Plan['resources'] {
  const requests: Record<string, string> = { ...defaults.resources.requests, ...opts.resources.requests };
  const limits: Record<string, string> = { ...defaults.resources.limits, ...opts.resources.limits };
  for (const r of ['cpu', 'memory'] as const) {
    const req = requests[r];
    const lim = limits[r];
    if (req === undefined || lim === undefined || quantityValue(req) <= quantityValue(lim)) continue;
    if (opts.resources.requests[r] !== undefined) {
      const key = r === 'cpu' ? ANN_CPU_REQUEST : ANN_MEMORY_REQUEST;
      throw new SkError('SK_ERR_ANNOTATION_INVALID', `${key}: ${req} is more than the ${r} limit ${lim}`, {
        where: key,
      });
    }
    requests[r] = lim;
  }
  return { requests, limits };
}

function checkNamesFree(pod: Pod): void {
  const used = (list: Array<{ name: string }> | undefined, n: string) =>
    (list ?? []).some((x) => x.name === n);
  const spec = pod.spec;
  for (const v of [NAMES.secretsVolume, NAMES.tokenVolume, NAMES.exitVolume]) {
    if (used(spec?.volumes, v)) {
      throw new SkError(
        'SK_ERR_MANIFEST_INVALID',
        `spec.volumes: the pod already has a volume "${v}", a name sidekey reserves`,
        {
          where: 'spec.volumes',
        },
      );
    }
  }
  const all: Container[] = [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])];
  for (const n of [NAMES.agent, NAMES.init]) {
    if (used(all, n)) {
      throw new SkError(
        'SK_ERR_MANIFEST_INVALID',
        `spec.containers: the pod already has a container "${n}", a name sidekey reserves`,
        {
          where: 'spec.containers',
        },
      );
    }
  }
}

/** A backend's extra volume must not clash with one of the pod's (the API server would refuse it). */
function checkVolumesFree(pod: Pod, extra: readonly AgentVolume[]): void {
  for (const v of extra) {
    if ((pod.spec?.volumes ?? []).some((x) => x.name === v.name)) {
      throw new SkError(
        'SK_ERR_MANIFEST_INVALID',
        `spec.volumes: the pod already has a volume "${v.name}", a name sidekey reserves`,
        { where: 'spec.volumes' },
      );
    }
  }
}

/**
 * What the agent needs from the pod for the backends its secrets use (projected tokens, env, volumes,
 * cluster info), and the spec settings pointing at them: each backend descriptor's `wirePod`, in the
 * registered order. A token is mounted even when the pod sets `automountServiceAccountToken: false`:
 * the agent gets its own, short-lived one with the backend's audience, and the app containers never
 * see it.
 */
function planTokens(
  spec: SpecInput,
  resolved: ResolvedSpec,
  inputs: InjectOptions['backendInputs'],
  namespace: string | undefined,
  deps: ValidateDeps,
): Pick<Plan, 'tokens' | 'projectClusterInfo' | 'agentEnv' | 'agentVolumes'> {
  const used = new Set(resolved.secrets.map((s) => s.ref.provider));
  const tokens = new Map<string, TokenSource>();
  const add = (t: TokenSource) => tokens.set(t.path, t);
  const agentEnv: EnvVar[] = [];
  const agentVolumes: AgentVolume[] = [];
  let projectClusterInfo = false;
  const backends = (spec.backends ?? {}) as Record<string, Record<string, unknown> | undefined>;

  // A wiring annotation (e.g. an IAM role) for a backend no secret uses is a mistake, not a no-op.
  for (const row of BACKEND_SETTINGS) {
    if (row.input !== undefined && !used.has(row.backend) && inputs[row.backend]?.[row.input] !== undefined) {
      throw new SkError(
        'SK_ERR_ANNOTATION_INVALID',
        `${row.key}: set, but no secret uses ${/^[aeiou]/.test(row.backend) ? 'an' : 'a'} ${row.backend}: ref`,
        { where: row.key },
      );
    }
  }
  const descriptors = deps.backends ?? BACKENDS;
  for (const d of descriptors) {
    if (!used.has(d.name) || !d.wirePod) continue;
    const w = d.wirePod({
      settings: (backends[d.name] ?? {}) as never,
      inputs: inputs[d.name] ?? {},
      namespace,
      tokenDir: TOKEN_DIR,
    });
    if (!w) continue;
    for (const t of w.tokens ?? []) {
      add({
        path: t.path,
        audience: t.audience,
        ...(t.expirationSeconds !== undefined ? { expirationSeconds: t.expirationSeconds } : {}),
      });
    }
    if (w.projectClusterInfo) projectClusterInfo = true;
    for (const e of w.env ?? []) agentEnv.push({ name: e.name, value: e.value });
    agentVolumes.push(...(w.volumes ?? []));
    if (w.settings) backends[d.name] = { ...backends[d.name], ...w.settings };
  }
  // Providers registered without a descriptor (tests, embedders) can still ask for the default token.
  for (const p of used) {
    if (descriptors.some((d) => d.name === p)) continue;
    if (deps.registry.has(p) && deps.registry.get(p).needs?.serviceAccountToken)
      add({ path: 'token', audience: undefined });
  }
  if (Object.keys(backends).length > 0) spec.backends = backends as SpecInput['backends'];
  else delete spec.backends;
  return { tokens: [...tokens.values()], projectClusterInfo, agentEnv, agentVolumes };
}
