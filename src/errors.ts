/**
 * The one table of user-facing failures. Every error a user can see carries a stable `SK_ERR_*` code
 * from this table and a one-line cause naming the field, annotation, ref or backend call that failed.
 *
 * Rules (checked by test/unit/errors.test.ts):
 * - every code is documented in docs/errors.md;
 * - messages never contain secret values: callers pass names, refs and paths, never data.
 */

/** Exit code used by the CLI for invalid user input (spec, annotations, refs). */
export const EXIT_INVALID_INPUT = 2;
/** Exit code used by the CLI for a failure at run time (backend, disk). */
export const EXIT_RUNTIME = 1;

interface ErrorDef {
  /** Short summary, used as the documentation title. */
  readonly summary: string;
  /** Whether the failure is the user's input (exit 2, admission denial) or a run-time failure. */
  readonly kind: 'input' | 'runtime';
  /** HTTP status when the error crosses the webhook's HTTP boundary. */
  readonly status: number;
}

export const ERRORS = {
  // --- spec / annotations (input) ---
  SK_ERR_SPEC_PARSE: { summary: 'the spec file is not valid YAML/JSON', kind: 'input', status: 400 },
  SK_ERR_SPEC_INVALID: { summary: 'a spec field has a wrong type or value', kind: 'input', status: 400 },
  SK_ERR_SPEC_VERSION: { summary: 'unknown apiVersion or kind', kind: 'input', status: 400 },
  SK_ERR_ANNOTATION_INVALID: {
    summary: 'a sidekey.io/ annotation has a bad value',
    kind: 'input',
    status: 400,
  },
  SK_ERR_ANNOTATION_UNKNOWN: { summary: 'an unknown sidekey.io/ annotation', kind: 'input', status: 400 },
  SK_ERR_SECRET_NAME: {
    summary: 'a secret name is not lowercase letters, digits, - or .',
    kind: 'input',
    status: 400,
  },
  SK_ERR_REF_SYNTAX: {
    summary: 'a secret ref is not <provider>:<locator>[#key]',
    kind: 'input',
    status: 400,
  },
  SK_ERR_PROVIDER_UNKNOWN: {
    summary: 'a secret ref names a provider that does not exist',
    kind: 'input',
    status: 400,
  },
  SK_ERR_PATH_INVALID: {
    summary: 'a file path is absolute, contains .., or is not normalised',
    kind: 'input',
    status: 400,
  },
  SK_ERR_MODE_INVALID: {
    summary: 'a file mode is not an octal mode such as 0440',
    kind: 'input',
    status: 400,
  },
  SK_ERR_DURATION_INVALID: {
    summary: 'a duration is not like 30s, 5m, 1h30m or 0',
    kind: 'input',
    status: 400,
  },
  SK_ERR_FORMAT_INVALID: {
    summary: 'a format is not raw, json, env, yaml or properties',
    kind: 'input',
    status: 400,
  },
  SK_ERR_TEMPLATE_SYNTAX: { summary: 'a template does not parse', kind: 'input', status: 400 },
  SK_ERR_ON_CHANGE_INVALID: {
    summary: 'an on-change action is not signal:, http:, exec: or none',
    kind: 'input',
    status: 400,
  },
  SK_ERR_CONTAINER_UNKNOWN: {
    summary: 'sidekey.io/containers names a container the pod does not have',
    kind: 'input',
    status: 400,
  },
  SK_ERR_CLI_USAGE: { summary: 'the command line is wrong', kind: 'input', status: 400 },
  SK_ERR_MANIFEST_INVALID: {
    summary: 'an input manifest cannot be read as a Kubernetes object',
    kind: 'input',
    status: 400,
  },
  SK_ERR_POD_TOO_LARGE: {
    summary: 'the pod is above a webhook limit (secrets, containers, *_FILE entries or patch size)',
    kind: 'input',
    status: 400,
  },

  // --- fetching (runtime) ---
  SK_ERR_SOURCE_NOT_FOUND: {
    summary: 'the secret (file, path, name) does not exist',
    kind: 'runtime',
    status: 502,
  },
  SK_ERR_SOURCE_UNREADABLE: {
    summary: 'the source exists but cannot be read or parsed',
    kind: 'runtime',
    status: 502,
  },
  SK_ERR_KEY_NOT_FOUND: { summary: 'the #key of a ref is not in the secret', kind: 'runtime', status: 502 },
  SK_ERR_BACKEND_AUTH: { summary: 'authentication to a backend failed', kind: 'runtime', status: 502 },
  SK_ERR_BACKEND_DENIED: { summary: 'the backend denied access to the secret', kind: 'runtime', status: 502 },
  SK_ERR_BACKEND_UNAVAILABLE: {
    summary: 'the backend is unreachable, sealed, or throttling',
    kind: 'runtime',
    status: 503,
  },
  SK_ERR_BACKEND_RESPONSE: {
    summary: 'the backend answered with something unexpected',
    kind: 'runtime',
    status: 502,
  },
  SK_ERR_BACKEND_TIMEOUT: {
    summary: 'a backend call (or the whole agent --once run) did not finish within its deadline',
    kind: 'runtime',
    status: 504,
  },
  SK_ERR_BACKEND_CONFIG: { summary: 'the backend settings are missing or wrong', kind: 'input', status: 400 },
  SK_ERR_LEASE_NOT_RENEWABLE: {
    summary: 'a dynamic secret lease cannot be extended further (max TTL); new credentials are fetched',
    kind: 'runtime',
    status: 502,
  },

  // --- rendering / writing / running (runtime) ---
  SK_ERR_TEMPLATE_RENDER: { summary: 'a template failed while rendering', kind: 'runtime', status: 500 },
  SK_ERR_RENDER: {
    summary: 'a secret cannot be rendered in the requested format',
    kind: 'runtime',
    status: 500,
  },
  SK_ERR_WRITE: { summary: 'writing the files to the output directory failed', kind: 'runtime', status: 500 },
  SK_ERR_STALE: {
    summary: 'a secret could not be refreshed for longer than max-stale',
    kind: 'runtime',
    status: 500,
  },
  SK_ERR_NOTIFY: { summary: 'notifying the app after a change failed', kind: 'runtime', status: 500 },
  SK_ERR_COMMAND: {
    summary: 'the command given to sidekey run could not be started',
    kind: 'runtime',
    status: 500,
  },
  SK_ERR_TLS: { summary: 'the TLS certificate or key cannot be loaded', kind: 'runtime', status: 500 },
  SK_ERR_WEBHOOK_CHECK: {
    summary: 'sidekey check-webhook: the API server did not return an injected dry-run pod',
    kind: 'runtime',
    status: 500,
  },
  SK_ERR_LISTEN: {
    summary: "the agent's metrics and health listener cannot bind its address and port",
    kind: 'runtime',
    status: 500,
  },
  SK_ERR_WEBHOOK_CONFIG: {
    summary: 'the webhook config file is missing, not YAML, or has a bad field',
    kind: 'input',
    status: 500,
  },
  SK_ERR_WEBHOOK_BUSY: {
    summary: 'the webhook is answering as many reviews as it may at once and this one waited too long',
    kind: 'runtime',
    status: 503,
  },
  SK_ERR_INTERNAL: { summary: 'a bug in sidekey; please report it', kind: 'runtime', status: 500 },
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * A user-facing error. `message` is one line: the cause, naming the field/annotation/ref/backend call.
 * `where` is the offending field path, annotation or ref, kept separately for structured output.
 */
export class SkError extends Error {
  override readonly name = 'SkError';
  readonly code: ErrorCode;
  readonly where: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { where?: string; cause?: unknown }) {
    super(oneLine(message), options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.where = options?.where;
  }

  get kind(): 'input' | 'runtime' {
    return ERRORS[this.code].kind;
  }

  /** `SK_ERR_X: where: message` — the form printed by the CLI and returned by the webhook. */
  override toString(): string {
    return `${this.code}: ${this.message}`;
  }
}

/** Collapse whitespace so an error is always one line (upstream messages sometimes carry newlines). */
export function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

export function isSkError(e: unknown): e is SkError {
  return e instanceof SkError;
}

/**
 * The first line of a library error's message, bounded. YAML parsers (js-yaml, which the Kubernetes
 * client uses for kubeconfig files) put a snippet of the input on the lines after the reason, and a
 * kubeconfig holds tokens and client keys: only the reason and position may reach the user.
 */
export function firstLine(e: unknown, max = 200): string {
  const msg = e instanceof Error ? e.message : String(e);
  const line = (msg.split('\n')[0] ?? '').trim();
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/** Wrap anything thrown into an SkError without leaking its stack (or values) to the user. */
export function toSkError(e: unknown, fallback: ErrorCode = 'SK_ERR_INTERNAL', context?: string): SkError {
  if (e instanceof SkError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new SkError(fallback, context ? `${context}: ${msg}` : msg, { cause: e });
}

/**
 * Like {@link toSkError}, for failures of code that handles secret values (providers, renderers): an
 * SkError passes through, anything else broke the provider contract and is shown by its type only.
 * Its message may quote a response body or the value itself (V8's JSON.parse errors quote their
 * input), so neither the message nor the error (as `cause`) is kept.
 */
export function toValueSafeSkError(e: unknown, fallback: ErrorCode, context: string): SkError {
  if (e instanceof SkError) return e;
  const type = e instanceof Error ? e.name : typeof e;
  return new SkError(
    fallback,
    `${context}: failed unexpectedly (${type}); the details are withheld because they may contain the value`,
  );
}
