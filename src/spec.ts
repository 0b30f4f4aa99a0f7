import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { parseDuration } from './duration.js';
import { SkError } from './errors.js';
import { type OnChange, parseOnChange } from './on-change.js';
import { parseFileMode, validateRelativePath } from './paths.js';
import { BACKENDS, type Backends, type BackendsInput } from './providers/builtin.js';
import { parseRef, type SecretRef } from './refs.js';

/**
 * The sidekey spec (`apiVersion: sidekey.io/v1`, `kind: SecretSpec`): one document for the cluster and
 * the laptop. The webhook builds it from pod annotations and hands it to the agent as JSON in
 * `SIDEKEY_SPEC`; a developer writes the same schema as YAML in `sidekey.yaml`.
 *
 * Validation happens once, in {@link loadSpec}/{@link resolveSpec}: the zod schema checks shapes, then
 * each field is resolved (durations to ms, modes to numbers, refs parsed, paths checked) and the result
 * is deeply frozen. Everything downstream takes a {@link ResolvedSpec} and never re-validates.
 */

export const API_VERSION = 'sidekey.io/v1';
export const KIND = 'SecretSpec';

/** Secret names: lowercase letters, digits, `-`, `.`; also the default file name. */
export const SECRET_NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

export const FORMATS = ['raw', 'json', 'env', 'yaml', 'properties'] as const;
export type Format = (typeof FORMATS)[number];

const durationInput = z.union([z.string(), z.number()]);
const modeInput = z.union([z.string(), z.number().int()]);

/**
 * `backends.<name>`: one settings schema per backend, from its descriptor (src/providers/<name>/).
 * Built from the registered list, so adding a backend adds its settings here.
 */
const backendsSchema = z
  .object(Object.fromEntries(BACKENDS.map((d) => [d.name, d.settings.optional()])))
  .strict() as unknown as z.ZodType<BackendsInput, BackendsInput>;

const secretSchema = z
  .object({
    ref: z.string(),
    format: z.enum(FORMATS).optional(),
    template: z.string().optional(),
    file: z.string().optional(),
    mode: modeInput.optional(),
    refresh: durationInput.optional(),
    /** The env var this secret replaces: the app gets `<env>_FILE` pointing at the file. */
    env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
      .optional(),
  })
  .strict();

export const specSchema = z
  .object({
    apiVersion: z.string(),
    kind: z.string(),
    metadata: z.object({ name: z.string().optional() }).loose().optional(),
    output: z
      .object({
        /** Where files land: `/run/sidekey` in a pod, e.g. `./.sidekey/secrets` on a laptop. */
        dir: z.string().optional(),
        defaultMode: modeInput.optional(),
        /** uid/gid for the files, applied where permitted (running as root). */
        uid: z.number().int().nonnegative().optional(),
        gid: z.number().int().nonnegative().optional(),
      })
      .strict()
      .optional(),
    /** Default refresh for every secret; `0` = fetch once. */
    refresh: durationInput.optional(),
    /** Fraction of the refresh interval added or removed at random (0–0.5). */
    jitter: z.number().min(0).max(0.5).optional(),
    backoff: z
      .object({ initial: durationInput.optional(), max: durationInput.optional() })
      .strict()
      .optional(),
    maxStale: z
      .object({ after: durationInput.optional(), action: z.enum(['keep', 'fail']).optional() })
      .strict()
      .optional(),
    /** `signal:HUP[@process]`, `http:<url>`, `exec:<command>`, or `none`. */
    onChange: z.string().optional(),
    /** Debounce window for change notifications across the file set. */
    debounce: durationInput.optional(),
    /** Deadline of one backend call (a fetch or a lease renewal, all its retries included). */
    fetchTimeout: durationInput.optional(),
    agent: z
      .object({
        /** `once` fetches and exits (init container); `run` keeps rotating. */
        mode: z.enum(['once', 'run']).optional(),
        /** File the app creates to make a long-running agent exit (for Jobs). */
        exitFile: z.string().optional(),
        /** The HTTP listener for /metrics, /healthz and /readyz (long-running agent only); off when absent. */
        metrics: z
          .object({
            port: z.number().int().min(1).max(65535),
            /** Address to bind: default loopback; the webhook sets `0.0.0.0` so Prometheus and the kubelet reach it. */
            address: z.union([z.ipv4(), z.ipv6()], 'must be an IPv4 or IPv6 address').optional(),
          })
          .strict()
          .optional(),
        /** Deadline of the whole `agent --once` run. */
        onceTimeout: durationInput.optional(),
      })
      .strict()
      .optional(),
    backends: backendsSchema.optional(),
    secrets: z.record(z.string(), secretSchema),
  })
  .strict();

/** The spec as written (YAML/JSON), before resolution. */
export type SpecInput = z.input<typeof specSchema>;

export type { Backends } from './providers/builtin.js';

/** One secret after resolution. */
export interface ResolvedSecret {
  readonly name: string;
  readonly ref: SecretRef;
  readonly format: Format;
  readonly template: string | undefined;
  /** Relative path under the output dir, validated (no `..`, not absolute). */
  readonly file: string;
  readonly mode: number;
  /** Refresh interval in ms; 0 = fetch once. */
  readonly refreshMs: number;
  readonly env: string | undefined;
}

/** The validated, normalised, frozen spec everything downstream uses. */
export interface ResolvedSpec {
  readonly name: string | undefined;
  readonly output: {
    readonly dir: string;
    readonly defaultMode: number;
    readonly uid?: number;
    readonly gid?: number;
  };
  readonly refreshMs: number;
  readonly jitter: number;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly maxStale: { readonly afterMs: number; readonly action: 'keep' | 'fail' };
  readonly onChange: OnChange;
  readonly debounceMs: number;
  /** Deadline of one backend call (fetch or renewal, retries included), ms; never 0. */
  readonly fetchTimeoutMs: number;
  readonly agent: {
    readonly mode: 'once' | 'run';
    readonly exitFile: string | undefined;
    /** The metrics/health listener; undefined = off. */
    readonly metrics: { readonly port: number; readonly address: string } | undefined;
    /** Deadline of the whole `agent --once` run, ms; never 0. */
    readonly onceTimeoutMs: number;
  };
  readonly backends: Backends;
  /** Secrets in declaration order. */
  readonly secrets: readonly ResolvedSecret[];
}

export const DEFAULTS = Object.freeze({
  outputDir: '/run/sidekey',
  mode: 0o440,
  refreshMs: 5 * 60_000,
  jitter: 0.1,
  backoffInitialMs: 1000,
  backoffMaxMs: 5 * 60_000,
  maxStaleAfterMs: 0,
  maxStaleAction: 'keep' as const,
  debounceMs: 200,
  /** The metrics listener binds loopback unless the spec says otherwise. */
  metricsAddress: '127.0.0.1',
  fetchTimeoutMs: 30_000,
  onceTimeoutMs: 30_000,
});

export interface ResolveOptions {
  /** Directory relative `file:` refs and relative output dirs resolve against (the spec file's dir). */
  baseDir?: string;
  /** Prefix for error locations, e.g. the spec file name. */
  source?: string;
  /**
   * Provider names that exist; a ref naming another is refused with SK_ERR_PROVIDER_UNKNOWN.
   * Omit to skip that check (it then happens when providers are created).
   */
  knownProviders?: readonly string[];
  /** Extra per-secret check, e.g. the template compiler; throw an SkError to refuse. */
  checkSecret?: (secret: ResolvedSecret, where: string) => void;
}

/**
 * YAML 1.2 reads an unquoted `mode: 0400` as the decimal 400 (= 0620), a silent wrong file mode. Ints
 * written with a leading zero are read as octal instead, as users (and YAML 1.1, and chmod) mean them.
 */
const LEADING_ZERO_OCTAL = {
  identify: (v: unknown) => typeof v === 'number',
  default: true,
  tag: 'tag:yaml.org,2002:int',
  test: /^0[0-7]+$/,
  resolve: (s: string) => Number.parseInt(s, 8),
};

/** Parse YAML or JSON text (one document) and resolve it. */
export function loadSpec(text: string, opts: ResolveOptions = {}): ResolvedSpec {
  const src = opts.source ?? 'spec';
  let doc: unknown;
  try {
    const parsed = YAML.parseDocument(text, {
      prettyErrors: false,
      uniqueKeys: true,
      customTags: (tags) => [LEADING_ZERO_OCTAL, ...tags],
    });
    if (parsed.errors.length > 0) {
      const e = parsed.errors[0]!;
      // linePos is only filled with prettyErrors; compute the line from the offset otherwise
      const line = e.linePos?.[0]?.line ?? text.slice(0, e.pos[0]).split('\n').length;
      throw new SkError('SK_ERR_SPEC_PARSE', `${src}${line ? `:${line}` : ''}: ${e.message.split('\n')[0]}`, {
        where: src,
      });
    }
    doc = parsed.toJS();
  } catch (e) {
    if (e instanceof SkError) throw e;
    throw new SkError('SK_ERR_SPEC_PARSE', `${src}: ${(e as Error).message.split('\n')[0]}`, { where: src });
  }
  return resolveSpec(doc, opts);
}

/** Validate and resolve a spec object (from YAML, or from `SIDEKEY_SPEC` JSON). */
export function resolveSpec(doc: unknown, opts: ResolveOptions = {}): ResolvedSpec {
  const src = opts.source ?? 'spec';
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new SkError(
      'SK_ERR_SPEC_INVALID',
      `${src}: the spec must be a mapping with apiVersion, kind and secrets`,
      {
        where: src,
      },
    );
  }
  const d = doc as Record<string, unknown>;
  if (d.apiVersion !== API_VERSION || d.kind !== KIND) {
    throw new SkError(
      'SK_ERR_SPEC_VERSION',
      `${src}: apiVersion/kind must be ${API_VERSION}/${KIND}, got ${String(d.apiVersion)}/${String(d.kind)}`,
      { where: `${src}:apiVersion` },
    );
  }
  const r = specSchema.safeParse(doc);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const at = issue.path.map(String).join('.') || '(root)';
    throw new SkError('SK_ERR_SPEC_INVALID', `${src}: ${at}: ${issueText(issue)}`, { where: `${src}:${at}` });
  }
  const s = r.data;
  const baseDir = opts.baseDir ?? process.cwd();
  const w = (p: string) => `${src}:${p}`;

  const defaultMode =
    s.output?.defaultMode === undefined
      ? DEFAULTS.mode
      : parseFileMode(s.output.defaultMode, w('output.defaultMode'));
  const refreshMs = s.refresh === undefined ? DEFAULTS.refreshMs : parseDuration(s.refresh, w('refresh'));
  const outDir = s.output?.dir ?? DEFAULTS.outputDir;

  const secrets: ResolvedSecret[] = [];
  const files = new Map<string, string>();
  for (const [name, sec] of Object.entries(s.secrets)) {
    const at = `secrets.${name}`;
    if (!SECRET_NAME_RE.test(name)) {
      throw new SkError(
        'SK_ERR_SECRET_NAME',
        `${w(at)}: "${name}" must be lowercase letters, digits, - or .`,
        {
          where: w(at),
        },
      );
    }
    const ref = parseRef(sec.ref, w(`${at}.ref`));
    if (opts.knownProviders && !opts.knownProviders.includes(ref.provider)) {
      throw new SkError(
        'SK_ERR_PROVIDER_UNKNOWN',
        `${w(`${at}.ref`)}: the ref names an unknown provider (known: ${opts.knownProviders.join(', ')})`,
        { where: w(`${at}.ref`) },
      );
    }
    const file = validateRelativePath(sec.file ?? name, w(`${at}.file`));
    const clash = files.get(file);
    if (clash) {
      throw new SkError(
        'SK_ERR_PATH_INVALID',
        `${w(`${at}.file`)}: "${file}" is also the file of secret "${clash}"`,
        {
          where: w(`${at}.file`),
        },
      );
    }
    files.set(file, name);
    const resolved: ResolvedSecret = {
      name,
      ref,
      format: sec.format ?? 'raw',
      template: sec.template,
      file,
      mode: sec.mode === undefined ? defaultMode : parseFileMode(sec.mode, w(`${at}.mode`)),
      refreshMs: sec.refresh === undefined ? refreshMs : parseDuration(sec.refresh, w(`${at}.refresh`)),
      env: sec.env,
    };
    opts.checkSecret?.(resolved, w(at));
    secrets.push(resolved);
  }
  checkFilePrefixes(files, w);

  const spec: ResolvedSpec = {
    name: s.metadata?.name,
    output: {
      dir: path.resolve(baseDir, outDir),
      defaultMode,
      ...(s.output?.uid !== undefined ? { uid: s.output.uid } : {}),
      ...(s.output?.gid !== undefined ? { gid: s.output.gid } : {}),
    },
    refreshMs,
    jitter: s.jitter ?? DEFAULTS.jitter,
    backoff: {
      initialMs:
        s.backoff?.initial === undefined
          ? DEFAULTS.backoffInitialMs
          : parseDuration(s.backoff.initial, w('backoff.initial')),
      maxMs:
        s.backoff?.max === undefined ? DEFAULTS.backoffMaxMs : parseDuration(s.backoff.max, w('backoff.max')),
    },
    maxStale: {
      afterMs:
        s.maxStale?.after === undefined
          ? DEFAULTS.maxStaleAfterMs
          : parseDuration(s.maxStale.after, w('maxStale.after')),
      action: s.maxStale?.action ?? DEFAULTS.maxStaleAction,
    },
    onChange: parseOnChange(s.onChange ?? 'none', w('onChange')),
    debounceMs: s.debounce === undefined ? DEFAULTS.debounceMs : parseDuration(s.debounce, w('debounce')),
    fetchTimeoutMs: positiveDuration(s.fetchTimeout, DEFAULTS.fetchTimeoutMs, w('fetchTimeout')),
    agent: {
      mode: s.agent?.mode ?? 'run',
      exitFile: s.agent?.exitFile,
      metrics: s.agent?.metrics && {
        port: s.agent.metrics.port,
        address: s.agent.metrics.address ?? DEFAULTS.metricsAddress,
      },
      onceTimeoutMs: positiveDuration(s.agent?.onceTimeout, DEFAULTS.onceTimeoutMs, w('agent.onceTimeout')),
    },
    backends: resolveBackends(s.backends, baseDir),
    secrets,
  };
  return deepFreeze(spec);
}

/** Each backend's settings after its descriptor's `resolve` (e.g. relative paths made absolute). */
function resolveBackends(input: BackendsInput | undefined, baseDir: string): Backends {
  const out: Record<string, unknown> = { ...input };
  for (const d of BACKENDS) {
    if (d.resolve) out[d.name] = d.resolve(out[d.name] as never, { baseDir });
  }
  return out as Backends;
}

/** A deadline: a duration above 0 (a deadline of 0 would fail everything, "never" hangs forever). */
function positiveDuration(v: string | number | undefined, dflt: number, where: string): number {
  if (v === undefined) return dflt;
  const ms = parseDuration(v, where);
  if (ms <= 0) {
    throw new SkError('SK_ERR_DURATION_INVALID', `${where}: a deadline must be above 0, e.g. 10s or 1m`, {
      where,
    });
  }
  return ms;
}

/** A file may not be both a file and a directory of another file (`a` and `a/b`). */
function checkFilePrefixes(files: Map<string, string>, w: (p: string) => string): void {
  for (const [file, name] of files) {
    const parts = file.split('/');
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const other = files.get(prefix);
      if (other) {
        throw new SkError(
          'SK_ERR_PATH_INVALID',
          `${w(`secrets.${name}.file`)}: "${file}" is inside the file of secret "${other}"`,
          {
            where: w(`secrets.${name}.file`),
          },
        );
      }
    }
  }
}

function issueText(issue: z.core.$ZodIssue): string {
  // zod's messages are about types and keys, never about values, so they are safe to show.
  if (issue.code === 'unrecognized_keys') return `unknown field(s) ${issue.keys.join(', ')}`;
  return issue.message;
}

/** Recursively freeze an object graph (spec objects are plain data). */
export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as Record<string, unknown>)) deepFreeze(v);
  }
  return o;
}

/** A JSON Schema of the spec document, for editors and docs (`sidekey schema`). */
export function specJsonSchema(): unknown {
  return z.toJSONSchema(specSchema, { io: 'input' });
}
