import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { INJECT_MODES, parseQuantity, validateMountPath } from '../src/annotations.js';
import { parseDuration } from '../src/duration.js';
import { SkError } from '../src/errors.js';
import { parseOnChange } from '../src/on-change.js';
import { clusterDefaultsSchema } from '../src/providers/backend.js';
import { BACKENDS } from '../src/providers/builtin.js';
import { deepFreeze } from '../src/spec.js';

/**
 * The webhook's configuration file (`sidekey webhook --config <file>`; the Helm chart renders it into
 * a ConfigMap). Cluster-wide defaults that pod annotations override. Validated once by
 * {@link loadWebhookConfig} / {@link parseWebhookConfig}, then frozen.
 *
 * Every field is optional; an empty file (or no file) gives the defaults shown in the schema.
 */

/** A string accepted by one of the parsers annotations use, so the config and pods follow one rule. */
function checkedBy(parse: (v: string, where: string) => unknown, message: string) {
  return z.string().refine((v) => {
    try {
      parse(v, 'config');
      return true;
    } catch {
      return false;
    }
  }, message);
}

const quantity = checkedBy(parseQuantity, 'must be a resource quantity such as 100m or 32Mi');
const duration = checkedBy(parseDuration, 'must be a duration like 30s, 5m, 1h30m or 0');
const mountPath = checkedBy(validateMountPath, 'must be an absolute, normalised path other than /');
const onChange = checkedBy(
  parseOnChange,
  'must be signal:<SIG>[@process], http:<url>, exec:<command> or none',
);

const resourceList = z.object({ cpu: quantity.optional(), memory: quantity.optional() }).strict();

const AGENT_DEFAULTS = {
  image: 'ghcr.io/sidekey/sidekey:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  imagePullSecrets: [],
  command: ['sidekey'],
  mode: 'auto',
  refresh: '5m',
  onChange: 'none',
  tmpfsSize: '4Mi',
  mountPath: '/run/sidekey',
  runAsUser: 65532,
  runAsGroup: 65532,
  resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '64Mi' } },
  metrics: { port: 0, scrapeAnnotations: true },
} as const;

/** A Kubernetes version as written in the config or `--kube-version`: `1.30`, `v1.31.2`, `1.29.1-eks.2`. */
export const KUBE_VERSION_RE = /^v?\d+\.\d+(\.\d+)?([-+].*)?$/;

export const webhookConfigSchema = z
  .object({
    /** Optional document header; when present it must be `sidekey.io/v1` / `WebhookConfig`. */
    apiVersion: z.literal('sidekey.io/v1').optional(),
    kind: z.literal('WebhookConfig').optional(),
    /** The injected agent and the defaults pods' annotations override. */
    agent: z
      .object({
        /** The agent image (the sidekey image). */
        image: z.string().min(1).default(AGENT_DEFAULTS.image),
        imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default(AGENT_DEFAULTS.imagePullPolicy),
        /**
         * Secrets (names, in the pod's namespace) the kubelet uses to pull the agent image from a
         * private registry; added to every injected pod's `imagePullSecrets` (names it already lists
         * are kept once).
         */
        imagePullSecrets: z.array(z.string().min(1)).default([]),
        /**
         * How to start sidekey inside the image: the agent container runs `[...command, 'agent', …]`
         * and the startup probe execs `[...command, 'agent', '--probe']`. Default `["sidekey"]`, the
         * binary on the image's PATH.
         */
        command: z
          .array(z.string().min(1))
          .min(1)
          .default([...AGENT_DEFAULTS.command]),
        /** Injection mode when a pod sets no `sidekey.io/mode`. */
        mode: z.enum(INJECT_MODES).default(AGENT_DEFAULTS.mode),
        /** Refresh of every secret when a pod sets no `sidekey.io/refresh`. */
        refresh: duration.default(AGENT_DEFAULTS.refresh),
        /** On-change action when a pod sets no `sidekey.io/on-change`. */
        onChange: onChange.default(AGENT_DEFAULTS.onChange),
        /** `sizeLimit` of the memory-backed emptyDir (counts against the pod's memory). */
        tmpfsSize: quantity.default(AGENT_DEFAULTS.tmpfsSize),
        /** Where secrets appear in app containers when a pod sets no `sidekey.io/mount-path`. */
        mountPath: mountPath.default(AGENT_DEFAULTS.mountPath),
        /** uid/gid of the agent when the pod sets none (non-root: the restricted Pod Security Standard). */
        runAsUser: z.number().int().min(1).default(AGENT_DEFAULTS.runAsUser),
        runAsGroup: z.number().int().min(0).default(AGENT_DEFAULTS.runAsGroup),
        /** Requests and limits are configured separately; an omitted one keeps its default. */
        resources: z
          .object({
            requests: resourceList.default({ ...AGENT_DEFAULTS.resources.requests }),
            limits: resourceList.default({ ...AGENT_DEFAULTS.resources.limits }),
          })
          .strict()
          .default({
            requests: { ...AGENT_DEFAULTS.resources.requests },
            limits: { ...AGENT_DEFAULTS.resources.limits },
          }),
        /**
         * The agent's metrics and health listener when a pod sets no `sidekey.io/metrics-port`:
         * `port` 0 = off. `scrapeAnnotations`: injected pods with the listener on get
         * `prometheus.io/scrape|port|path` (unless the pod already has `prometheus.io/scrape`).
         */
        metrics: z
          .object({
            port: z.number().int().min(0).max(65535).default(AGENT_DEFAULTS.metrics.port),
            scrapeAnnotations: z.boolean().default(AGENT_DEFAULTS.metrics.scrapeAnnotations),
          })
          .strict()
          .default({ ...AGENT_DEFAULTS.metrics }),
      })
      .strict()
      .default(structuredClone(AGENT_DEFAULTS) as never),
    /**
     * Whether the cluster runs native sidecars (init containers with `restartPolicy: Always`, on by
     * default since Kubernetes 1.29, which every supported release has). `auto` decides from
     * `kubernetesVersion`, or from the API server's /version (re-read periodically): classic init +
     * sidecar only when the cluster is known to be older than 1.29; an unknown version means native.
     */
    nativeSidecars: z.union([z.boolean(), z.literal('auto')]).default('auto'),
    /**
     * OpenShift (`restricted-v2` SCC): the SCC assigns each pod a uid from the namespace's range and
     * refuses a fixed `runAsUser` outside it, so the agent gets no `runAsUser`/`runAsGroup` of its own
     * (it runs with the uid the SCC assigns to the pod, like the app) and relies on the pod's `fsGroup`.
     */
    openshift: z.boolean().default(false),
    /** The cluster's version (`1.30`, `v1.31.2`), for `nativeSidecars: auto`. */
    kubernetesVersion: z
      .string()
      .regex(KUBE_VERSION_RE, 'must be a version such as 1.30 or v1.31.2')
      .optional(),
    /**
     * What a pod with invalid annotations gets: `deny` (admission refused with the SK_ERR code and
     * the annotation) or `allow-without-injection` (admitted unchanged, with a warning; counted).
     */
    onInvalidAnnotations: z.enum(['deny', 'allow-without-injection']).default('deny'),
    /** Namespaces never mutated; the webhook's own namespace (POD_NAMESPACE) is always added. */
    excludedNamespaces: z.array(z.string().min(1)).default(['kube-system', 'kube-public']),
    /**
     * Cluster defaults for backends (`backends.<name>`, each backend's `clusterDefaults` fields, checked
     * as its annotations are); pod annotations (`sidekey.io/<name>-*`) override them.
     */
    backends: z
      .object(
        Object.fromEntries(
          BACKENDS.filter((d) => d.clusterDefaults.length > 0).map((d) => [
            d.name,
            clusterDefaultsSchema(d).optional(),
          ]),
        ),
      )
      .strict()
      .default({}) as unknown as z.ZodDefault<
      z.ZodType<Record<string, Readonly<Record<string, unknown>> | undefined>>
    >,
    /**
     * Admission reviews answered at once; more wait (up to 5 s, then HTTP 503 SK_ERR_WEBHOOK_BUSY)
     * before their body is read. The largest accepted review × this must fit the memory limit: 2
     * fits the chart's 192Mi with room (docs/webhook.md, "Limits"). The handler is synchronous, so
     * more turns add no throughput on one core.
     */
    maxConcurrentReviews: z.number().int().min(1).max(64).default(2),
    /** Log level (pino); `SIDEKEY_LOG_LEVEL` wins when set. Default `info`. */
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  })
  .strict();

/** The config file as written. */
export type WebhookConfigInput = z.input<typeof webhookConfigSchema>;

/** The validated, defaulted, frozen config. */
export type WebhookConfig = Readonly<
  z.output<typeof webhookConfigSchema> & {
    /** excludedNamespaces plus the webhook's own namespace. */
    readonly excluded: readonly string[];
  }
>;

/** Kubernetes minor version from which native sidecars are on by default (beta in 1.29, GA 1.33). */
export const NATIVE_SIDECAR_MIN_MINOR = 29;

/**
 * Validate a config document (already parsed). `ownNamespace` (normally `POD_NAMESPACE`) joins the
 * excluded namespaces so the webhook never blocks its own pods. Throws SK_ERR_WEBHOOK_CONFIG naming the
 * field.
 */
export function parseWebhookConfig(
  doc: unknown,
  opts: { source?: string; ownNamespace?: string } = {},
): WebhookConfig {
  const src = opts.source ?? 'webhook config';
  const r = webhookConfigSchema.safeParse(dropNulls(doc) ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const at = issue.path.map(String).join('.') || '(root)';
    const msg =
      issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message;
    throw new SkError('SK_ERR_WEBHOOK_CONFIG', `${src}: ${at}: ${msg}`, { where: `${src}:${at}` });
  }
  const excluded = [
    ...new Set([...r.data.excludedNamespaces, ...(opts.ownNamespace ? [opts.ownNamespace] : [])]),
  ];
  return deepFreeze({ ...r.data, excluded });
}

/** Read, parse and validate the config file; no file → all defaults. */
export function loadWebhookConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): WebhookConfig {
  const ownNamespace = env.POD_NAMESPACE || undefined;
  if (file === undefined) return parseWebhookConfig({}, { ownNamespace });
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SkError(
      'SK_ERR_WEBHOOK_CONFIG',
      `${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      {
        where: file,
        cause: e,
      },
    );
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new SkError('SK_ERR_WEBHOOK_CONFIG', `${file}: not valid YAML (${(e as Error).message})`, {
      where: file,
    });
  }
  return parseWebhookConfig(doc, { source: file, ownNamespace });
}

/** The `major.minor` of a Kubernetes version string, or undefined when it is not one. */
export function parseKubeVersion(v: string | undefined): { major: number; minor: number } | undefined {
  const m = v ? /^v?(\d+)\.(\d+)/.exec(v) : null;
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

/**
 * Whether to inject native sidecars: `true`/`false` as configured; for `auto`, from the configured or
 * discovered Kubernetes version. Every supported Kubernetes release has native sidecars, so only a
 * cluster *known* to be older than 1.29 gets classic sidecars; an unknown version means native.
 */
export function nativeSidecarsEnabled(config: WebhookConfig, discoveredVersion?: string): boolean {
  if (typeof config.nativeSidecars === 'boolean') return config.nativeSidecars;
  const v = parseKubeVersion(config.kubernetesVersion ?? discoveredVersion);
  if (!v) return true;
  return v.major > 1 || (v.major === 1 && v.minor >= NATIVE_SIDECAR_MIN_MINOR);
}

/** Whether `auto` had to be decided without knowing the cluster's version (said once to the user). */
export function kubeVersionUnknown(config: WebhookConfig, discoveredVersion?: string): boolean {
  return (
    config.nativeSidecars === 'auto' &&
    parseKubeVersion(config.kubernetesVersion ?? discoveredVersion) === undefined
  );
}

/** Helm renders unset values as `null`; treat them as absent so the defaults apply. */
function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = dropNulls(x);
    return out;
  }
  return v;
}
