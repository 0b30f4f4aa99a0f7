import { refSyntaxError, type SecretRef } from '../../refs.js';

/**
 * `gcp:` refs (cheap: no I/O, no client code):
 *
 * - `gcp:projects/<project>/secrets/<secret>[/versions/<n|latest>][#key]` — the resource name as in
 *   the Secret Manager API;
 * - `gcp:<secret>[/versions/<n|latest>][#key]` — the project comes from the settings
 *   (`backends.gcp.project`, `GOOGLE_CLOUD_PROJECT`, the credentials file, or the metadata server).
 *
 * No version means `latest`. No `?options`.
 */
export interface GcpLocator {
  /** Project id or number; undefined for the short form. */
  readonly project: string | undefined;
  readonly secret: string;
  /** `latest` or a version number (`1`, `2`, …). */
  readonly version: string;
}

/** Project ids (6–30, lowercase, digits, -; domain-scoped `example.com:proj`) or numbers. */
const PROJECT_RE = /^(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$/;
/** Secret ids: letters, digits, - and _, at most 255. */
const SECRET_RE = /^[A-Za-z0-9_-]{1,255}$/;
const VERSION_RE = /^(?:latest|[1-9][0-9]{0,18})$/;

const FULL_RE = /^projects\/([^/]+)\/secrets\/([^/]+)(?:\/versions\/([^/]+))?$/;
const SHORT_RE = /^([^/]+)(?:\/versions\/([^/]+))?$/;

const FORMS = 'gcp:projects/<project>/secrets/<secret>[/versions/<n|latest>] or gcp:<secret>';

/** Parse and check a `gcp:` ref's locator; throws SK_ERR_REF_SYNTAX naming `where` (never quoting the ref). */
export function parseGcpRef(ref: SecretRef, where: string): GcpLocator {
  const fail = (why: string): never => {
    throw refSyntaxError(where, why);
  };
  const opts = Object.keys(ref.options);
  if (opts.length > 0) fail(`has an option; gcp: refs take none (${FORMS})`);
  const loc = ref.locator;
  let project: string | undefined;
  let secret: string;
  let version: string | undefined;
  const full = FULL_RE.exec(loc);
  if (full) {
    [, project, secret, version] = full as unknown as [string, string, string, string | undefined];
    if (!PROJECT_RE.test(project)) fail('names a project that is not a project id or number');
  } else if (loc.startsWith('projects/')) {
    return fail(
      loc.includes('/locations/')
        ? `names a regional secret, which is not supported (${FORMS})`
        : `is not a Secret Manager name (${FORMS})`,
    );
  } else {
    const short = SHORT_RE.exec(loc);
    if (!short) return fail(`is not a Secret Manager name (${FORMS})`);
    [, secret, version] = short as unknown as [string, string, string | undefined];
  }
  if (!SECRET_RE.test(secret)) fail('names a secret id that is not letters, digits, - and _ (at most 255)');
  if (version !== undefined && !VERSION_RE.test(version))
    fail('names a version that is not a number or latest');
  return { project, secret, version: version ?? 'latest' };
}
