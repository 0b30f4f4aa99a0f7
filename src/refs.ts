import { SkError } from './errors.js';

/**
 * A parsed secret reference: `<provider>:<locator>[?opt=v&…][#key.path]`.
 *
 * Examples: `vault:secret/data/app/db#password`, `aws:prod/app/db?stage=AWSPREVIOUS#password`,
 * `k8s:db-credentials#password`, `file:./secrets.yaml#db.password`.
 */
export interface SecretRef {
  /** The ref exactly as written (it names no secret value, so it may be logged). */
  readonly raw: string;
  /** Provider name, e.g. `vault`. */
  readonly provider: string;
  /** Provider-specific locator, e.g. `secret/data/app/db`. */
  readonly locator: string;
  /** Query options (`?stage=…&version=…`). */
  readonly options: Readonly<Record<string, string>>;
  /** Dotted key path selecting one field of a map secret, or undefined for the whole secret. */
  readonly key: string | undefined;
}

/**
 * The SK_ERR_REF_SYNTAX error for a ref that the parser or a provider's `validateRef` refuses. A value
 * refused as a ref may be a secret pasted by mistake into `sidekey.io/secret-<name>`, and this error
 * reaches admission denials, events and logs: it names where the ref is and what is wrong with it,
 * and never quotes the ref. Every syntax check uses it, so none can quote by accident.
 */
export function refSyntaxError(where: string, why: string): SkError {
  return new SkError('SK_ERR_REF_SYNTAX', `${where}: the ref ${why}`, { where });
}

const PROVIDER_RE = /^[a-z][a-z0-9-]*$/;

/** Parse a ref. Syntax only: whether the provider exists is checked by the registry. */
export function parseRef(raw: string, where = 'ref'): SecretRef {
  const fail = (why: string): never => {
    throw refSyntaxError(where, `${why}; expected <provider>:<locator>[#key]`);
  };
  if (typeof raw !== 'string') return fail('is not a string');
  const s = raw.trim();
  const colon = s.indexOf(':');
  if (colon <= 0) return fail('has no provider');
  const provider = s.slice(0, colon);
  if (!PROVIDER_RE.test(provider))
    return fail('has a bad provider name (lowercase letters, digits and -, starting with a letter)');
  let rest = s.slice(colon + 1);

  let key: string | undefined;
  const hash = rest.indexOf('#');
  if (hash >= 0) {
    key = rest.slice(hash + 1);
    rest = rest.slice(0, hash);
    if (key === '' || key.startsWith('.') || key.endsWith('.') || key.includes('..'))
      return fail('has an empty #key');
  }

  const options: Record<string, string> = {};
  const q = rest.indexOf('?');
  if (q >= 0) {
    const query = rest.slice(q + 1);
    rest = rest.slice(0, q);
    for (const [k, v] of new URLSearchParams(query)) {
      if (k === '') return fail('has an empty option name');
      if (k in options) return fail('repeats an option');
      options[k] = v;
    }
  }
  if (rest === '') return fail('has an empty locator');
  return Object.freeze({ raw: s, provider, locator: rest, options: Object.freeze(options), key });
}

/** Format a ref back to its canonical string (round-trips with {@link parseRef}). */
export function formatRef(ref: Omit<SecretRef, 'raw'>): string {
  const q = new URLSearchParams(ref.options as Record<string, string>).toString();
  return `${ref.provider}:${ref.locator}${q ? `?${q}` : ''}${ref.key !== undefined ? `#${ref.key}` : ''}`;
}
