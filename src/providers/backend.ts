import { z } from 'zod';
import { parseDuration } from '../duration.js';
import { SkError } from '../errors.js';
import type { SecretRef } from '../refs.js';
import type { ProviderFactory } from './types.js';

/**
 * The backend descriptor: everything sidekey knows about a backend besides its client code, in one
 * small object per backend (`src/providers/<name>/descriptor.ts`), listed once in
 * `src/providers/builtin.ts`. The spec schema (`backends.<name>`), the webhook config's cluster
 * defaults, the `sidekey.io/<name>-*` annotations, the pod wiring (projected tokens, env), the lazy
 * loader, docs/annotations.md's backend table and the chart's `backends.*` values are all derived
 * from the descriptors.
 *
 * This module sits below `src/spec.ts`, `src/annotations.ts` and `webhook/config.ts`: it and every
 * descriptor import only zod and sidekey's own small leaf modules (errors, refs, duration), never an
 * SDK. The heavy provider is behind {@link BackendDescriptor.load}.
 */

/** How an annotation value (and the same setting as a cluster default) is checked. */
export type SettingFormat =
  /** Any non-empty string. */
  | 'string'
  /** A file path in the agent container (not checked further). */
  | 'path'
  /** An absolute http(s) URL without credentials. */
  | 'url'
  /** A duration (`30s`, `5m`, `1h30m`, `0`); kept as written. */
  | 'duration'
  /** `true` or `false`; becomes a boolean. */
  | 'boolean'
  /** One of these words. */
  | readonly string[]
  /** A string matching `pattern` (anchored); `what` names the expected form in errors and docs. */
  | { readonly pattern: RegExp; readonly what: string };

/**
 * One `sidekey.io/*` annotation of a backend. Exactly one of `field` and `input`:
 * - `field`: the value becomes the setting `backends.<name>.<field>` of the agent's spec (annotations
 *   override cluster defaults);
 * - `input`: the value is only for the pod wiring ({@link PodWiringContext.inputs}), not written to the
 *   spec (e.g. the IAM role the webhook puts in the agent's env). Setting it on a pod with no ref of
 *   this backend is an error.
 */
export interface AnnotationRow {
  /** The full key, `sidekey.io/<backend>-<setting>`. */
  readonly key: string;
  readonly field?: string;
  readonly input?: string;
  readonly format: SettingFormat;
  /** One line for docs/annotations.md (Markdown). */
  readonly doc: string;
}

/** A projected service-account token the agent needs (a `serviceAccountToken` projection). */
export interface ProjectedToken {
  /** File name in the agent's token directory ({@link PodWiringContext.tokenDir}). */
  readonly path: string;
  /** Undefined: the API server's default audience. */
  readonly audience?: string | undefined;
  /** Default 3600 (the kubelet refreshes the token at 80 % of it). */
  readonly expirationSeconds?: number;
}

/** An extra volume mounted into the agent containers only. */
export interface AgentVolume {
  /** Volume name; must start with `sidekey-` (the webhook refuses pods already using it). */
  readonly name: string;
  readonly mountPath: string;
  /** The volume source, as in a Pod's `spec.volumes[]` minus `name` (e.g. `{ configMap: {...} }`). */
  readonly source: Readonly<Record<string, unknown>>;
}

/** What {@link BackendDescriptor.wirePod} is given: one injected pod, for a backend its secrets use. */
export interface PodWiringContext<Settings> {
  /** This backend's settings in the pod's spec: annotations over cluster defaults (`{}` if none). */
  readonly settings: Readonly<Partial<Settings>>;
  /** Values of this backend's `input` annotations, parsed, by input name. */
  readonly inputs: Readonly<Record<string, unknown>>;
  /** The pod's namespace, when known. */
  readonly namespace: string | undefined;
  /** Where the agent's projected token volume is mounted; token paths are relative to it. */
  readonly tokenDir: string;
}

/** What an injected pod needs for one backend. Everything is optional. */
export interface PodWiring<Settings> {
  /** Projected service-account tokens (same `path` from two backends → one token). */
  readonly tokens?: readonly ProjectedToken[];
  /** Project the cluster CA (`ca.crt`) and the pod namespace (`namespace`) next to the tokens. */
  readonly projectClusterInfo?: boolean;
  /** Environment variables of the agent containers. */
  readonly env?: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  /** Extra volumes for the agent containers. */
  readonly volumes?: readonly AgentVolume[];
  /**
   * Settings the wiring fills in (e.g. the token file), merged over the pod's settings into the
   * agent's spec. Returning `settings` (even `{}`) writes `backends.<name>` into the spec.
   */
  readonly settings?: Readonly<Partial<Settings>>;
}

// biome-ignore lint/suspicious/noExplicitAny: the settings schema of any backend
type AnySettingsSchema = z.ZodObject<any>;

/** What `describeIdentity` may read of an injected pod. */
export interface IdentityContext {
  /** The pod's service account. */
  readonly serviceAccount: string;
  /** The audience of a projected token file the agent reads (`the API server's default audience`, `audience "vault"`); undefined: not a projected token. */
  tokenAudience(file: string | undefined): string | undefined;
  /** The agent container's environment (names and values the webhook set; never secrets). */
  readonly agentEnv: Readonly<Record<string, string>>;
  /** Where the agent's projected tokens are. */
  readonly tokenDir: string;
}

export interface BackendDescriptor<
  Name extends string = string,
  Schema extends AnySettingsSchema = AnySettingsSchema,
> {
  /** The ref prefix (`<name>:`) and the `backends.<name>` key. Lowercase letters and digits. */
  readonly name: Name;
  /** One line for docs: what the backend is. */
  readonly title: string;
  /** Check a ref's locator and options (syntax only, no I/O); throw `refSyntaxError(where, why)`. */
  validateRef(ref: SecretRef, where: string): void;
  /** `backends.<name>` of the spec: a strict zod object, every field optional. */
  readonly settings: Schema;
  /** The backend's `sidekey.io/<name>-*` annotations. */
  readonly annotations: readonly AnnotationRow[];
  /**
   * Settings the webhook config (`backends.<name>`, the chart's values) may set for every pod. A field
   * with an annotation row is checked by that row's format, so config and pods follow one rule.
   */
  readonly clusterDefaults: ReadonlyArray<keyof z.output<Schema> & string>;
  /** Resolve settings after validation (e.g. relative paths against the spec file's directory). */
  resolve?(settings: z.output<Schema> | undefined, ctx: { readonly baseDir: string }): z.output<Schema>;
  /** What an injected pod needs for this backend; called when a secret of the pod uses it. */
  wirePod?(ctx: PodWiringContext<z.input<Schema>>): PodWiring<z.input<Schema>> | undefined;
  /**
   * A setting a pod's effective settings lack that the agent cannot work without (e.g. Vault's
   * address), for offline warnings (`sidekey inject`, `sidekey explain`): `"no X is set: set
   * sidekey.io/…, or backends.<name>.… in the webhook config"`; undefined when nothing is missing.
   */
  missingSetting?(settings: z.input<Schema> | undefined): string | undefined;
  /**
   * For `sidekey explain`: with which identity the agent reaches the backend, in one line (auth
   * method, role, service account, token audience); default: the backend's title.
   */
  describeIdentity?(settings: z.input<Schema> | undefined, ctx: IdentityContext): string;
  /** The provider itself (SDK clients), imported on first use. */
  load(): Promise<ProviderFactory>;
}

/** Define a descriptor (keeps its literal name and settings type for the derived types). */
export function defineBackend<const Name extends string, Schema extends AnySettingsSchema>(
  d: BackendDescriptor<Name, Schema>,
): BackendDescriptor<Name, Schema> {
  return Object.freeze(d);
}

/** A duration setting as written in a spec: `"30s"` or milliseconds. */
export const durationInput = z.union([z.string(), z.number()]);

// ---------------------------------------------------------------------------------------------------
// Setting formats: one parser for annotations, one zod schema for cluster defaults
// ---------------------------------------------------------------------------------------------------

/**
 * A setting's value is never quoted: a value typed into the wrong annotation (a token for a role, a
 * URL with `user:password@`) may be a secret. The key and what was expected say enough.
 */
function invalid(key: string, why: string): SkError {
  return new SkError('SK_ERR_ANNOTATION_INVALID', `${key}: ${why}`, { where: key });
}

/** Why `v` is not an http(s) URL without credentials, or undefined when it is one. */
function urlProblem(v: string): string | undefined {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return 'is not an absolute URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'must be an http(s) URL';
  if (u.username || u.password) return 'must not carry credentials';
  return undefined;
}

/**
 * Parse an annotation value by its row's format, naming `key` on error (SK_ERR_ANNOTATION_INVALID, or
 * SK_ERR_DURATION_INVALID for a duration).
 */
export function parseSettingValue(format: SettingFormat, key: string, raw: string): unknown {
  const v = raw.trim();
  if (v === '') throw invalid(key, 'is empty');
  if (Array.isArray(format)) {
    if (!format.includes(v)) throw invalid(key, `is not one of ${format.join(', ')}`);
    return v;
  }
  if (typeof format === 'object') {
    const f = format as { pattern: RegExp; what: string };
    if (!anchored(f.pattern).test(v)) throw invalid(key, `is not ${f.what}`);
    return v;
  }
  switch (format) {
    case 'url': {
      const why = urlProblem(v);
      if (why) throw invalid(key, why);
      return v;
    }
    case 'boolean':
      if (v !== 'true' && v !== 'false') throw invalid(key, 'is not true or false');
      return v === 'true';
    case 'duration':
      parseDuration(v, key);
      return v;
    default:
      return v;
  }
}

function anchored(re: RegExp): RegExp {
  return new RegExp(`^(?:${re.source})$`, re.flags);
}

/** The zod schema of a cluster default with this format (same rule as the annotation). */
export function settingFormatSchema(format: SettingFormat): z.ZodType {
  if (Array.isArray(format)) return z.enum(format as [string, ...string[]]);
  if (typeof format === 'object') {
    const f = format as { pattern: RegExp; what: string };
    return z.string().regex(anchored(f.pattern), `must be ${f.what}`);
  }
  switch (format) {
    case 'url':
      return z
        .string()
        .refine((v) => urlProblem(v) === undefined, 'must be an http(s) URL without credentials')
        .meta({ pattern: '^https?://.+$' });
    case 'boolean':
      return z.boolean();
    case 'duration':
      return z.string().refine((v) => {
        try {
          parseDuration(v, 'config');
          return true;
        } catch {
          return false;
        }
      }, 'must be a duration like 30s, 5m, 1h30m or 0');
    default:
      return z.string();
  }
}

/** How a format reads in docs (Markdown). */
export function settingFormatText(format: SettingFormat): string {
  if (Array.isArray(format)) return format.map((w) => `\`${w}\``).join(' \\| ');
  if (typeof format === 'object') return (format as { what: string }).what;
  switch (format) {
    case 'url':
      return 'http(s) URL without credentials';
    case 'boolean':
      return '`true` \\| `false`';
    case 'duration':
      return 'duration (`10s`, `1m`)';
    default:
      return format;
  }
}

/**
 * The schema of a backend's cluster defaults (`backends.<name>` in the webhook config): its
 * {@link BackendDescriptor.clusterDefaults} fields, each checked by its annotation row's format where
 * it has one, else by the settings schema.
 */
export function clusterDefaultsSchema(d: BackendDescriptor): z.ZodObject {
  const shape: Record<string, z.ZodType> = {};
  for (const field of d.clusterDefaults) {
    const row = d.annotations.find((r) => r.field === field);
    const base = row ? settingFormatSchema(row.format) : (d.settings.shape[field] as z.ZodType);
    const doc = row?.doc;
    shape[field] = (doc ? base.describe(doc) : base).optional();
  }
  return z.object(shape).strict();
}
