import path from 'node:path';
import { parseDuration } from './duration.js';
import { ErrorCollector } from './error-list.js';
import { SkError } from './errors.js';
import { parseOnChange } from './on-change.js';
import { parseFileMode, validateRelativePath } from './paths.js';
import { type AnnotationRow, parseSettingValue } from './providers/backend.js';
import { BACKENDS, backendAnnotations } from './providers/builtin.js';
import { parseRef } from './refs.js';
import { API_VERSION, DEFAULTS, FORMATS, type Format, KIND, SECRET_NAME_RE, type SpecInput } from './spec.js';
import { closest, distance } from './suggest.js';

/**
 * Every `sidekey.io/*` pod annotation, in one place. Each key is a named constant whose doc comment
 * gives its format and default; docs/annotations.md lists the same table for users.
 *
 * Two consumers: the webhook (annotations → pod patch + agent spec) and `sidekey scan`/`migrate`
 * (which write these annotations). Parsing is pure: no I/O, errors are {@link SkError}s whose `where`
 * is the annotation key, so an admission denial or a CLI message always names the annotation.
 */

/** The prefix of every sidekey annotation. */
export const PREFIX = 'sidekey.io/';

// ---------------------------------------------------------------------------------------------------
// Pod level
// ---------------------------------------------------------------------------------------------------

/** `"true"` opts the pod in. Anything else (or absent) leaves the pod untouched. Default: absent. */
export const ANN_INJECT = 'sidekey.io/inject';
/** Written by the webhook (`injected`); a pod carrying it is never mutated again. */
export const ANN_STATUS = 'sidekey.io/status';
/** Value of {@link ANN_STATUS} once injected. */
export const STATUS_INJECTED = 'injected';
/**
 * `auto` | `native` | `sidecar` | `init-only`. Default: the webhook config's `agent.mode` (`auto`:
 * native sidecar where the cluster supports it, else init container + classic sidecar).
 */
export const ANN_MODE = 'sidekey.io/mode';
/** Comma list of app container names that get the mount and `*_FILE` env. Default: all containers. */
export const ANN_CONTAINERS = 'sidekey.io/containers';
/** Absolute directory where secrets appear in app containers. Default `/run/sidekey`. */
export const ANN_MOUNT_PATH = 'sidekey.io/mount-path';
/**
 * Absolute path of the file a run-to-completion pod's app writes when it is done (e.g.
 * `/run/sidekey-exit/done`). Only used when the agent runs as a classic sidecar: the webhook mounts a
 * small shared volume at the file's directory in the app containers and the agent, and the agent
 * exits 0 when the file appears, so the pod can complete. Default: none.
 */
export const ANN_EXIT_FILE = 'sidekey.io/exit-file';
/** Default refresh for every secret: a duration (`30s`, `5m`, `1h30m`) or `0` (once). Default `5m`. */
export const ANN_REFRESH = 'sidekey.io/refresh';
/**
 * After files change: `signal:HUP[@process]`, `http:<url>`, `exec:<command>` or `none` (default).
 * `signal:` makes the webhook set `shareProcessNamespace: true` so the agent can see the app.
 */
export const ANN_ON_CHANGE = 'sidekey.io/on-change';
/** Give up on a secret that could not be refreshed for this long (duration). Default `0` (never). */
export const ANN_MAX_STALE = 'sidekey.io/max-stale';
/** What to do once {@link ANN_MAX_STALE} is exceeded: `keep` (default, keep last good) | `fail`. */
export const ANN_MAX_STALE_ACTION = 'sidekey.io/max-stale-action';
/** Deadline of one backend call (a fetch or renewal, retries included): a duration above 0. Default `30s`. */
export const ANN_FETCH_TIMEOUT = 'sidekey.io/fetch-timeout';
/** Deadline of the whole `agent --once` run (init container): a duration above 0. Default `30s`. */
export const ANN_ONCE_TIMEOUT = 'sidekey.io/once-timeout';

/**
 * The agent's metrics and health listener: a port (1–65535) turns it on, on the pod IP, serving
 * /metrics, /healthz and /readyz (the native sidecar's startup probe then asks /readyz); `0` turns it
 * off. Default: the webhook config's `agent.metrics.port` (0, off). Not in init-only mode.
 */
export const ANN_METRICS_PORT = 'sidekey.io/metrics-port';

// --- resources / identity of the injected agent ---

/** CPU request of the agent (Kubernetes quantity, e.g. `10m`). Default: webhook config. */
export const ANN_CPU_REQUEST = 'sidekey.io/cpu-request';
/** CPU limit of the agent (quantity). Default: webhook config. */
export const ANN_CPU_LIMIT = 'sidekey.io/cpu-limit';
/** Memory request of the agent (quantity, e.g. `32Mi`). Default: webhook config. */
export const ANN_MEMORY_REQUEST = 'sidekey.io/memory-request';
/** Memory limit of the agent (quantity). Default: webhook config. */
export const ANN_MEMORY_LIMIT = 'sidekey.io/memory-limit';
/** uid of the agent (non-zero integer). Default: the pod's `runAsUser`, else the webhook config. */
export const ANN_RUN_AS_USER = 'sidekey.io/run-as-user';
/** gid of the agent (integer). Default: the pod's `runAsGroup`, else the webhook config. */
export const ANN_RUN_AS_GROUP = 'sidekey.io/run-as-group';
/** `sizeLimit` of the memory-backed volume (quantity). Default `4Mi` (counts against pod memory). */
export const ANN_TMPFS_SIZE = 'sidekey.io/tmpfs-size';

// ---------------------------------------------------------------------------------------------------
// Per secret: `sidekey.io/<prefix><name>`
// ---------------------------------------------------------------------------------------------------

/** `secret-<name>: <ref>` — required, declares the secret (`<provider>:<locator>[#key]`). */
export const SECRET_PREFIX = 'secret-';
/** `format-<name>`: `raw` (default) | `json` | `env` | `yaml` | `properties`. */
export const FORMAT_PREFIX = 'format-';
/** `template-<name>`: a LiquidJS template rendering the file (sandboxed). Default: none. */
export const TEMPLATE_PREFIX = 'template-';
/** `file-<name>`: relative path under the mount path (no `..`, not absolute). Default: `<name>`. */
export const FILE_PREFIX = 'file-';
/** `mode-<name>`: octal file mode. Default `0440`. */
export const MODE_PREFIX = 'mode-';
/** `refresh-<name>`: per-secret refresh (duration or `0`). Default: {@link ANN_REFRESH}. */
export const REFRESH_PREFIX = 'refresh-';
/**
 * `env-<name>: VAR`: app containers get `VAR_FILE=<mount>/<file>`, and an existing env var `VAR`
 * (literal or `secretKeyRef`) is removed from them. Default: none.
 */
export const ENV_PREFIX = 'env-';

/** The per-secret prefixes, in the order docs list them. */
export const SECRET_PREFIXES = [
  SECRET_PREFIX,
  FORMAT_PREFIX,
  TEMPLATE_PREFIX,
  FILE_PREFIX,
  MODE_PREFIX,
  REFRESH_PREFIX,
  ENV_PREFIX,
] as const;

/** The full annotation key of a per-secret setting, e.g. `secretKey('file-', 'db')`. */
export function secretKey(prefix: (typeof SECRET_PREFIXES)[number], name: string): string {
  return `${PREFIX}${prefix}${name}`;
}

// ---------------------------------------------------------------------------------------------------
// Backend settings: from the backend descriptors (src/providers/<name>/descriptor.ts)
// ---------------------------------------------------------------------------------------------------

/**
 * One backend annotation: key, the backend, and either the spec field it sets (`field`) or the pod
 * wiring input it feeds (`input`); its format and doc line. See {@link AnnotationRow}.
 */
export type BackendSetting = AnnotationRow & { readonly backend: string };

/**
 * Backend annotations a pod may set (cluster defaults come from the webhook config), derived from the
 * registered backends. One row per key; a unit test checks docs/annotations.md lists every key.
 */
export const BACKEND_SETTINGS: readonly BackendSetting[] = Object.freeze(backendAnnotations());

const BACKEND_BY_KEY = new Map(BACKEND_SETTINGS.map((s) => [s.key, s]));

/** Pod-level keys (not per-secret, not backend settings). */
export const POD_KEYS: readonly string[] = Object.freeze([
  ANN_INJECT,
  ANN_STATUS,
  ANN_MODE,
  ANN_CONTAINERS,
  ANN_MOUNT_PATH,
  ANN_REFRESH,
  ANN_ON_CHANGE,
  ANN_MAX_STALE,
  ANN_MAX_STALE_ACTION,
  ANN_METRICS_PORT,
  ANN_FETCH_TIMEOUT,
  ANN_ONCE_TIMEOUT,
  ANN_CPU_REQUEST,
  ANN_CPU_LIMIT,
  ANN_MEMORY_REQUEST,
  ANN_MEMORY_LIMIT,
  ANN_RUN_AS_USER,
  ANN_RUN_AS_GROUP,
  ANN_TMPFS_SIZE,
  ANN_EXIT_FILE,
]);
const POD_KEY_SET = new Set(POD_KEYS);

/** Injection modes (`sidekey.io/mode`). */
export const INJECT_MODES = ['auto', 'native', 'sidecar', 'init-only'] as const;
export type InjectMode = (typeof INJECT_MODES)[number];

// ---------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------

export type Annotations = Readonly<Record<string, string | undefined>>;

/** Whether the annotations opt in (`sidekey.io/inject: "true"`, exactly). */
export function isOptedIn(annotations: Annotations | undefined): boolean {
  return annotations?.[ANN_INJECT] === 'true';
}

/** Whether the pod was already injected (`sidekey.io/status: injected`). */
export function isInjected(annotations: Annotations | undefined): boolean {
  return annotations?.[ANN_STATUS] === STATUS_INJECTED;
}

/** Cluster defaults the annotations override (the webhook takes them from its config file). */
export interface AnnotationDefaults {
  /** Default `/run/sidekey`. */
  readonly mountPath?: string;
  /** Default refresh (duration). */
  readonly refresh?: string;
  /** Default on-change action. */
  readonly onChange?: string;
  /** Per backend name, its cluster-default settings. */
  readonly backends?: Readonly<Record<string, Readonly<Record<string, unknown>> | undefined>>;
}

/** A classified annotation key. */
export type KeyKind =
  | { kind: 'pod'; key: string }
  | { kind: 'backend'; key: string; setting: BackendSetting }
  | { kind: 'secret'; key: string; prefix: (typeof SECRET_PREFIXES)[number]; name: string }
  | { kind: 'unknown'; key: string }
  | { kind: 'foreign'; key: string };

/** Classify an annotation key: pod-level, backend setting, per-secret, unknown sidekey.io/ key, or other. */
export function classifyKey(key: string): KeyKind {
  if (!key.startsWith(PREFIX)) return { kind: 'foreign', key };
  if (POD_KEY_SET.has(key)) return { kind: 'pod', key };
  const setting = BACKEND_BY_KEY.get(key);
  if (setting) return { kind: 'backend', key, setting };
  const rest = key.slice(PREFIX.length);
  for (const prefix of SECRET_PREFIXES) {
    if (rest.startsWith(prefix) && rest.length > prefix.length) {
      return { kind: 'secret', key, prefix, name: rest.slice(prefix.length) };
    }
  }
  return { kind: 'unknown', key };
}

function invalid(key: string, why: string, code: 'SK_ERR_ANNOTATION_INVALID' = 'SK_ERR_ANNOTATION_INVALID') {
  return new SkError(code, `${key}: ${why}`, { where: key });
}

/** Short, single-line rendering of a user value for messages (annotation values are not secrets). */
function show(v: string): string {
  const s = v.replace(/\s+/g, ' ');
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);
}

/**
 * Check that `sidekey.io/*` keys are known. Throws SK_ERR_ANNOTATION_UNKNOWN for every unknown key
 * (sorted, so the message is stable), each with a "did you mean" when one is close.
 */
export function checkKnownKeys(annotations: Annotations): void {
  const errs = new ErrorCollector();
  for (const key of Object.keys(annotations).sort()) {
    if (classifyKey(key).kind !== 'unknown') continue;
    const hint = suggestKey(key, annotations);
    errs.run(() => {
      throw new SkError(
        'SK_ERR_ANNOTATION_UNKNOWN',
        `${key}: unknown sidekey.io annotation${hint ? `; did you mean ${hint}?` : ''} (see docs/annotations.md)`,
        { where: key },
      );
    });
  }
  errs.throwIfAny();
}

/**
 * The known key an unknown `sidekey.io/*` key most likely means: a pod or backend key by edit distance
 * (`sidekey.io/refrsh` → `sidekey.io/refresh`), or a per-secret key with a mistyped prefix and the same
 * secret name (`sidekey.io/secert-db` → `sidekey.io/secret-db`). Undefined when nothing is close.
 */
export function suggestKey(key: string, annotations: Annotations = {}): string | undefined {
  const rest = key.slice(PREFIX.length);
  const known = [...POD_KEYS, ...BACKEND_SETTINGS.map((s) => s.key)].map((k) => k.slice(PREFIX.length));
  // A secret name that other annotations declare is the likeliest tail.
  const declared = new Set(
    Object.keys(annotations)
      .map(classifyKey)
      .flatMap((c) => (c.kind === 'secret' ? [c.name] : [])),
  );
  const candidates: Array<{ key: string; word: string; target: string; bonus: number }> = known.map((k) => ({
    key: k,
    word: rest,
    target: k,
    bonus: 0,
  }));
  for (let i = rest.indexOf('-'); i > 0; i = rest.indexOf('-', i + 1)) {
    const head = rest.slice(0, i);
    const tail = rest.slice(i + 1);
    if (tail === '') continue;
    for (const p of SECRET_PREFIXES) {
      candidates.push({
        key: `${p}${tail}`,
        word: head,
        target: p.slice(0, -1),
        bonus: declared.has(tail) ? 1 : 0,
      });
    }
  }
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    if (closest(c.word, [c.target]) === undefined) continue;
    const score = distance(c.word, c.target) - c.bonus;
    if (score < bestScore) {
      bestScore = score;
      best = c.key;
    }
  }
  return best === undefined ? undefined : `${PREFIX}${best}`;
}

/** Parse a duration annotation, naming the key on error. */
function durationAt(key: string, v: string): string {
  parseDuration(v, key);
  return v.trim();
}

/** A deadline: a duration above 0. */
function deadlineAt(key: string, v: string): string {
  if (parseDuration(v, key) <= 0) {
    throw new SkError('SK_ERR_DURATION_INVALID', `${key}: a deadline must be above 0, e.g. 10s or 1m`, {
      where: key,
    });
  }
  return v.trim();
}

/** Secrets declared by the annotations, keyed by name, with their raw per-secret settings. */
interface RawSecret {
  ref?: string;
  format?: string;
  template?: string;
  file?: string;
  mode?: string;
  refresh?: string;
  env?: string;
}

const PREFIX_FIELD: Record<(typeof SECRET_PREFIXES)[number], keyof RawSecret> = {
  'secret-': 'ref',
  'format-': 'format',
  'template-': 'template',
  'file-': 'file',
  'mode-': 'mode',
  'refresh-': 'refresh',
  'env-': 'env',
};

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Validate a mount path: absolute, normalised, not `/`, no `..`; the directory secrets appear in.
 * Exported for the webhook config (the default mount path) so both follow the same rule.
 */
export function validateMountPath(p: string, where: string): string {
  const v = p.trim();
  const fail = (why: string) =>
    new SkError('SK_ERR_ANNOTATION_INVALID', `${where}: ${show(v)} ${why}`, { where });
  if (!path.posix.isAbsolute(v)) throw fail('is not an absolute path');
  if (v === '/') throw fail('must not be /');
  if (v.includes('\\') || v.includes('\0')) throw fail('contains a backslash or NUL');
  if (v.split('/').some((s) => s === '..' || s === '.')) throw fail('contains . or .. segments');
  if (path.posix.normalize(v) !== v || v.endsWith('/')) throw fail('is not normalised');
  return v;
}

/**
 * Turn pod annotations (already opted in) plus cluster defaults into the sidekey.io/v1 spec the agent
 * receives in `SIDEKEY_SPEC`.
 *
 * Every value is validated here, with the annotation key as the error location: SK_ERR_ANNOTATION_UNKNOWN
 * for an unknown `sidekey.io/*` key, SK_ERR_SECRET_NAME, SK_ERR_REF_SYNTAX, SK_ERR_FORMAT_INVALID,
 * SK_ERR_PATH_INVALID, SK_ERR_MODE_INVALID, SK_ERR_DURATION_INVALID, SK_ERR_ON_CHANGE_INVALID, and
 * SK_ERR_ANNOTATION_INVALID for the rest (a per-secret setting without its `secret-<name>`, a missing
 * secret, bad backend values). Provider existence and template syntax are checked by the caller, which
 * knows the provider registry and the template compiler (see webhook/validate.ts).
 *
 * Values are kept as written (`"0440"`, `"5m"`), so the spec in the pod reads like the annotations.
 */
export function annotationsToSpec(
  annotations: Annotations,
  defaults: AnnotationDefaults = {},
  collector?: ErrorCollector,
): SpecInput {
  // Every mistake is collected and reported at once, not the first only. With a caller's collector,
  // the mistakes go there and the spec of what is valid is returned (the caller checks on, then throws).
  const errs = collector ?? new ErrorCollector();
  errs.run(() => checkKnownKeys(annotations));
  const get = (k: string): string | undefined => annotations[k];

  const secrets = new Map<string, RawSecret>();
  const backends: Record<string, Record<string, unknown>> = {};
  for (const [k, v] of Object.entries(defaults.backends ?? {})) {
    if (v) backends[k] = { ...v };
  }

  for (const key of Object.keys(annotations).sort()) {
    const raw = annotations[key];
    if (raw === undefined) continue;
    const c = classifyKey(key);
    if (c.kind === 'backend') {
      // Pod wiring inputs (no `field`) are read by parseInjectOptions, not written to the spec.
      const { backend: b, field, format } = c.setting;
      if (field !== undefined) {
        errs.run(() => {
          backends[b] = { ...backends[b], [field]: parseSettingValue(format, key, raw) };
        });
      }
    } else if (c.kind === 'secret') {
      if (!SECRET_NAME_RE.test(c.name)) {
        errs.run(() => {
          throw new SkError(
            'SK_ERR_SECRET_NAME',
            `${key}: secret name ${show(c.name)} must be lowercase letters, digits, - or .`,
            { where: key },
          );
        });
        continue;
      }
      const s = secrets.get(c.name) ?? {};
      s[PREFIX_FIELD[c.prefix]] = raw;
      secrets.set(c.name, s);
    }
  }

  const specSecrets: SpecInput['secrets'] = {};
  const files = new Map<string, string>();
  const envs = new Map<string, string>();
  for (const name of [...secrets.keys()].sort()) {
    const s = secrets.get(name)!;
    const k = (p: (typeof SECRET_PREFIXES)[number]) => secretKey(p, name);
    if (s.ref === undefined) {
      const present = SECRET_PREFIXES.find((p) => s[PREFIX_FIELD[p]] !== undefined)!;
      errs.run(() => {
        throw invalid(
          k(present),
          `sets a property of secret "${name}", but ${k('secret-')} does not declare it`,
        );
      });
      continue;
    }
    const ref = errs.run(() => parseRef(s.ref!, k('secret-')));
    const out: SpecInput['secrets'][string] = { ref: ref?.raw ?? s.ref.trim() };
    errs.run(() => {
      if (s.format === undefined) return;
      const f = s.format.trim();
      if (!(FORMATS as readonly string[]).includes(f)) {
        throw new SkError(
          'SK_ERR_FORMAT_INVALID',
          `${k('format-')}: ${show(f)} is not one of ${FORMATS.join(', ')}`,
          {
            where: k('format-'),
          },
        );
      }
      out.format = f as Format;
    });
    errs.run(() => {
      if (s.template === undefined) return;
      if (s.template.trim() === '') throw invalid(k('template-'), 'is empty');
      out.template = s.template;
    });
    errs.run(() => {
      const file = validateRelativePath(
        s.file?.trim() ?? name,
        s.file === undefined ? k('secret-') : k('file-'),
      );
      const clash = files.get(file);
      if (clash !== undefined) {
        throw new SkError(
          'SK_ERR_PATH_INVALID',
          `${s.file === undefined ? k('secret-') : k('file-')}: file "${file}" is also the file of secret "${clash}"`,
          { where: s.file === undefined ? k('secret-') : k('file-') },
        );
      }
      files.set(file, name);
      if (s.file !== undefined) out.file = file;
    });
    errs.run(() => {
      if (s.mode === undefined) return;
      parseFileMode(s.mode, k('mode-'));
      out.mode = s.mode.trim();
    });
    errs.run(() => {
      if (s.refresh !== undefined) out.refresh = durationAt(k('refresh-'), s.refresh);
    });
    errs.run(() => {
      if (s.env === undefined) return;
      const e = s.env.trim();
      if (!ENV_NAME_RE.test(e)) throw invalid(k('env-'), `${show(e)} is not an environment variable name`);
      const other = envs.get(e);
      if (other !== undefined) throw invalid(k('env-'), `${e} is already replaced by secret "${other}"`);
      envs.set(e, name);
      out.env = e;
    });
    // A secret whose ref parsed stays in (its other mistakes are collected), so the caller can still
    // check its ref with the provider and its template.
    if (ref !== undefined) specSecrets[name] = out;
  }
  // `a` and `a/b` cannot both exist: one would be a file and a directory.
  for (const [file, name] of files) {
    const parts = file.split('/');
    for (let i = 1; i < parts.length; i++) {
      const other = files.get(parts.slice(0, i).join('/'));
      if (other !== undefined) {
        errs.run(() => {
          throw new SkError(
            'SK_ERR_PATH_INVALID',
            `${secretKey('file-', name)}: "${file}" is inside the file of secret "${other}"`,
            { where: secretKey('file-', name) },
          );
        });
        break;
      }
    }
  }
  if (secrets.size === 0) {
    errs.run(() => {
      throw invalid(
        ANN_INJECT,
        `is "true" but no ${PREFIX}${SECRET_PREFIX}<name> annotation declares a secret`,
      );
    });
  }

  // Key order is the order a reader expects in SIDEKEY_SPEC: settings first, secrets last.
  const spec = { apiVersion: API_VERSION, kind: KIND } as SpecInput;
  const mountRaw = get(ANN_MOUNT_PATH);
  spec.output = { dir: defaults.mountPath ?? DEFAULTS.outputDir };
  if (mountRaw !== undefined) {
    errs.run(() => {
      spec.output = { dir: validateMountPath(mountRaw, ANN_MOUNT_PATH) };
    });
  }
  const refresh = get(ANN_REFRESH);
  if (refresh !== undefined) errs.run(() => (spec.refresh = durationAt(ANN_REFRESH, refresh)));
  else if (defaults.refresh !== undefined) spec.refresh = defaults.refresh;
  const onChange = get(ANN_ON_CHANGE) ?? defaults.onChange;
  if (onChange !== undefined) {
    errs.run(() => {
      parseOnChange(onChange, get(ANN_ON_CHANGE) !== undefined ? ANN_ON_CHANGE : 'defaults.onChange');
      if (onChange.trim() !== 'none' && onChange.trim() !== '') spec.onChange = onChange.trim();
    });
  }
  const maxStale = get(ANN_MAX_STALE);
  const maxStaleAction = get(ANN_MAX_STALE_ACTION);
  if (maxStale !== undefined || maxStaleAction !== undefined) {
    const ms: NonNullable<SpecInput['maxStale']> = {};
    spec.maxStale = ms;
    if (maxStale !== undefined) errs.run(() => (ms.after = durationAt(ANN_MAX_STALE, maxStale)));
    if (maxStaleAction !== undefined) {
      errs.run(() => {
        const a = maxStaleAction.trim();
        if (a !== 'keep' && a !== 'fail')
          throw invalid(ANN_MAX_STALE_ACTION, `${show(a)} is not keep or fail`);
        ms.action = a;
      });
    }
  }
  const fetchTimeout = get(ANN_FETCH_TIMEOUT);
  if (fetchTimeout !== undefined)
    errs.run(() => (spec.fetchTimeout = deadlineAt(ANN_FETCH_TIMEOUT, fetchTimeout)));
  const onceTimeout = get(ANN_ONCE_TIMEOUT);
  const once =
    onceTimeout === undefined ? undefined : errs.run(() => deadlineAt(ANN_ONCE_TIMEOUT, onceTimeout));
  const mode = errs.run(() => parseInjectMode(annotations));
  if (!collector) errs.throwIfAny();
  if (mode === 'init-only' || once !== undefined) {
    spec.agent = {
      ...(mode === 'init-only' ? { mode: 'once' as const } : {}),
      ...(once !== undefined ? { onceTimeout: once } : {}),
    };
  }
  // In the registered backends' order, whatever order the annotations and defaults came in.
  const present = BACKENDS.filter((d) => backends[d.name] !== undefined);
  if (present.length > 0) {
    spec.backends = Object.fromEntries(present.map((d) => [d.name, backends[d.name]]));
  }
  spec.secrets = specSecrets;
  return spec;
}

/** `sidekey.io/mode`, or undefined when not set (the caller applies its default). */
export function parseInjectMode(annotations: Annotations): InjectMode | undefined {
  const v = annotations[ANN_MODE];
  if (v === undefined) return undefined;
  const m = v.trim();
  if (!(INJECT_MODES as readonly string[]).includes(m)) {
    throw invalid(ANN_MODE, `${show(m)} is not one of ${INJECT_MODES.join(', ')}`);
  }
  return m as InjectMode;
}

/**
 * Kubernetes resource quantity (the apimachinery regex), non-negative: `100m`, `0.5`, `32Mi`, `1e3`.
 */
const QUANTITY_RE =
  /^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;

/** Check a resource quantity, naming `where` on error. */
export function parseQuantity(v: string, where: string): string {
  const q = v.trim();
  if (!QUANTITY_RE.test(q)) {
    throw new SkError(
      'SK_ERR_ANNOTATION_INVALID',
      `${where}: ${show(q)} is not a resource quantity such as 100m or 32Mi`,
      {
        where,
      },
    );
  }
  return q;
}

const QUANTITY_SUFFIX: Readonly<Record<string, number>> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The value of a (valid) quantity as a number, to compare requests with limits. */
export function quantityValue(q: string): number {
  const m = /^\+?([0-9.]+)(.*)$/.exec(q.trim());
  if (!m) return Number.NaN;
  const [, num, suffix = ''] = m;
  if (/^[eE]/.test(suffix)) return Number(`${num}${suffix}`);
  return Number(num) * (QUANTITY_SUFFIX[suffix] ?? Number.NaN);
}

/** Pod-level settings that shape the injected containers rather than the agent spec. */
export interface InjectOptions {
  /** Undefined: the webhook default. */
  readonly mode: InjectMode | undefined;
  /** App containers to mount into; undefined = all. */
  readonly containers: readonly string[] | undefined;
  readonly resources: {
    readonly requests: { readonly cpu?: string; readonly memory?: string };
    readonly limits: { readonly cpu?: string; readonly memory?: string };
  };
  readonly runAsUser: number | undefined;
  readonly runAsGroup: number | undefined;
  readonly tmpfsSize: string | undefined;
  /**
   * Backend pod wiring inputs (annotation rows with `input`, e.g. an IAM role), by backend name, then
   * input name. Only backends with one set appear.
   */
  readonly backendInputs: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** `sidekey.io/metrics-port`: 0 = off; undefined = the webhook default. */
  readonly metricsPort: number | undefined;
  /** {@link ANN_EXIT_FILE}: an absolute, normalised path whose directory is not `/`. */
  readonly exitFile: string | undefined;
}

function intAt(key: string, v: string, min: number): number {
  const s = v.trim();
  if (!/^\d{1,10}$/.test(s) || Number(s) < min || Number(s) > 2147483647) {
    throw invalid(key, `${show(s)} is not an integer between ${min} and 2147483647`);
  }
  return Number(s);
}

/** Parse the pod-level options (mode, containers, resources, identity). Names the key on error. */
export function parseInjectOptions(annotations: Annotations, collector?: ErrorCollector): InjectOptions {
  const get = (k: string) => annotations[k];
  // Every mistake is collected and reported at once; with a caller's collector they go there and the
  // valid options are returned.
  const errs = collector ?? new ErrorCollector();
  const c = get(ANN_CONTAINERS);
  const containers =
    c === undefined
      ? undefined
      : errs.run(() => {
          const list = c
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean);
          if (list.length === 0) throw invalid(ANN_CONTAINERS, 'names no container');
          for (const n of list) {
            if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(n))
              throw invalid(ANN_CONTAINERS, `${show(n)} is not a container name`);
          }
          const seen = new Set<string>();
          for (const n of list) {
            if (seen.has(n)) throw invalid(ANN_CONTAINERS, `names ${n} twice`);
            seen.add(n);
          }
          return list;
        });
  const q = (k: string) => {
    const v = get(k);
    return v === undefined ? undefined : errs.run(() => parseQuantity(v, k));
  };
  const requests: { cpu?: string; memory?: string } = {};
  const limits: { cpu?: string; memory?: string } = {};
  const cpuReq = q(ANN_CPU_REQUEST);
  const cpuLim = q(ANN_CPU_LIMIT);
  const memReq = q(ANN_MEMORY_REQUEST);
  const memLim = q(ANN_MEMORY_LIMIT);
  if (cpuReq !== undefined) requests.cpu = cpuReq;
  if (memReq !== undefined) requests.memory = memReq;
  if (cpuLim !== undefined) limits.cpu = cpuLim;
  if (memLim !== undefined) limits.memory = memLim;
  const mp = get(ANN_METRICS_PORT);
  const metricsPort =
    mp === undefined
      ? undefined
      : errs.run(() => {
          const port = intAt(ANN_METRICS_PORT, mp, 0);
          if (port > 65535)
            throw invalid(
              ANN_METRICS_PORT,
              `${show(mp.trim())} is not a port between 1 and 65535 (or 0 for off)`,
            );
          return port;
        });
  const ru = get(ANN_RUN_AS_USER);
  const rg = get(ANN_RUN_AS_GROUP);
  const backendInputs: Record<string, Record<string, unknown>> = {};
  for (const row of BACKEND_SETTINGS) {
    const v = get(row.key);
    const input = row.input;
    if (input === undefined || v === undefined) continue;
    errs.run(() => {
      backendInputs[row.backend] = {
        ...backendInputs[row.backend],
        [input]: parseSettingValue(row.format, row.key, v),
      };
    });
  }
  const exitRaw = get(ANN_EXIT_FILE);
  const exitFile =
    exitRaw === undefined
      ? undefined
      : errs.run(() => {
          const f = validateMountPath(exitRaw, ANN_EXIT_FILE);
          if (path.posix.dirname(f) === '/') {
            throw invalid(ANN_EXIT_FILE, `${show(f)} must be in a directory, such as /run/sidekey-exit/done`);
          }
          return f;
        });
  const out: InjectOptions = {
    mode: errs.run(() => parseInjectMode(annotations)),
    containers,
    resources: { requests, limits },
    // uid 0 is refused: the agent must pass the restricted Pod Security Standard.
    runAsUser: ru === undefined ? undefined : errs.run(() => intAt(ANN_RUN_AS_USER, ru, 1)),
    runAsGroup: rg === undefined ? undefined : errs.run(() => intAt(ANN_RUN_AS_GROUP, rg, 0)),
    tmpfsSize: q(ANN_TMPFS_SIZE),
    backendInputs,
    metricsPort,
    exitFile,
  };
  if (!collector) errs.throwIfAny();
  return out;
}

/** Every annotation key users can set, for docs and `sidekey migrate` (per-secret ones as patterns). */
export function documentedKeys(): string[] {
  return [
    ...POD_KEYS,
    ...SECRET_PREFIXES.map((p) => `${PREFIX}${p}<name>`),
    ...BACKEND_SETTINGS.map((s) => s.key),
  ];
}
