import { parseDuration } from '../../duration.js';
import { type ErrorCode, SkError } from '../../errors.js';
import { isRecord } from '../../is-record.js';
import type { SecretRef } from '../../refs.js';
import { Limiter } from '../limit.js';
import type { FetchResult, Provider, ProviderContext, SecretValue } from '../types.js';
import {
  type AuthEnv,
  adcFile,
  adcSource,
  FederationSource,
  generateAccessTokenUrl,
  ImpersonationSource,
  MetadataSource,
  TokenCache,
  type TokenSource,
} from './auth.js';
import { crc32c } from './crc32c.js';
import {
  GCP_DEFAULT_ENDPOINT,
  GCP_DEFAULT_IAM_CREDENTIALS,
  GCP_DEFAULT_METADATA_HOST,
  GCP_DEFAULT_STS,
  GCP_TOKEN_PATH,
  type GcpSettings,
  gcpSettings,
} from './descriptor.js';
import { type HttpAnswer, HttpClient, jsonBody } from './http.js';
import { type GcpLocator, parseGcpRef } from './ref.js';
import { GCP_MAX_ATTEMPTS, type RetryOptions, sendWithRetry } from './retry.js';

/**
 * The `gcp:` provider: Google Cloud Secret Manager over its v1 REST API.
 *
 * - One call per secret: `GET <endpoint>/v1/projects/<p>/secrets/<s>/versions/<v>:access`. Its answer
 *   names the version it served, so `latest` comes back as a number, and that number is the version
 *   the engine compares (a rotation, i.e. a new version, changes it; re-reads of the same do not).
 * - The payload's CRC32C (`payload.dataCrc32c`) is checked; a mismatch is SK_ERR_BACKEND_RESPONSE.
 * - The value is the payload's bytes; with `#key` the payload must be a JSON object and is returned as
 *   a map (an unparsable one is SK_ERR_SOURCE_UNREADABLE).
 * - A disabled or destroyed version (FAILED_PRECONDITION) is looked up with `versions.get` to say
 *   which version and which state.
 * - 429/5xx/network: retried with backoff (honouring Retry-After or google.rpc.RetryInfo up to 10 s),
 *   at most {@link GCP_MAX_ATTEMPTS} attempts; a 401 drops the token and retries once with a new one.
 * - At most 8 calls in flight. No batching: the API has no batch read.
 */

/** Calls in flight to Secret Manager at most. */
export const GCP_MAX_IN_FLIGHT = 8;
/** Per-request timeout (default of `backends.gcp.timeout`). */
export const GCP_TIMEOUT_MS = 10_000;
/** Where the webhook mounts the projected token for federation. */
export const GCP_DEFAULT_TOKEN_FILE = `/var/run/secrets/sidekey.io/serviceaccount/${GCP_TOKEN_PATH}`;

/** Test seams. */
export interface GcpProviderOptions {
  env?: NodeJS.ProcessEnv;
  retry?: RetryOptions;
}

export class GcpProvider implements Provider {
  readonly name = 'gcp';
  readonly #settings: Readonly<GcpSettings>;
  readonly #http = new HttpClient();
  readonly #endpoint: string;
  readonly #timeoutMs: number;
  readonly #retry: RetryOptions;
  readonly #env: NodeJS.ProcessEnv;
  readonly #limiter = new Limiter(GCP_MAX_IN_FLIGHT);
  #tokens: TokenCache | undefined;
  #project: Promise<string | undefined> | undefined;
  /** Calls sent, by API method (each attempt counts): tests and the bench. */
  readonly stats = { requests: 0, byMethod: {} as Record<string, number> };

  constructor(settings: unknown, opts: GcpProviderOptions = {}) {
    const parsed = gcpSettings.safeParse(settings ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const where = ['backends', 'gcp', ...issue.path.map(String)].join('.');
      throw new SkError('SK_ERR_BACKEND_CONFIG', `${where}: ${issue.message}`, { where });
    }
    this.#settings = parsed.data;
    this.#env = opts.env ?? process.env;
    this.#retry = opts.retry ?? {};
    const s = this.#settings;
    this.#timeoutMs =
      s.timeout === undefined
        ? GCP_TIMEOUT_MS
        : parseDuration(s.timeout, 'backends.gcp.timeout') || GCP_TIMEOUT_MS;
    this.#endpoint = baseUrl(s.endpoint ?? GCP_DEFAULT_ENDPOINT, 'backends.gcp.endpoint');
    if (s.stsEndpoint !== undefined) baseUrl(s.stsEndpoint, 'backends.gcp.stsEndpoint');
    if (s.iamCredentialsEndpoint !== undefined)
      baseUrl(s.iamCredentialsEndpoint, 'backends.gcp.iamCredentialsEndpoint');
    if (s.serviceAccount !== undefined && !/^[^@\s/]+@[^@\s/]+$/.test(s.serviceAccount)) {
      throw new SkError(
        'SK_ERR_BACKEND_CONFIG',
        'backends.gcp.serviceAccount: not a service account email (name@project.iam.gserviceaccount.com)',
        { where: 'backends.gcp.serviceAccount' },
      );
    }
    if (s.auth === 'federation' && s.audience === undefined) {
      throw new SkError(
        'SK_ERR_BACKEND_CONFIG',
        'backends.gcp.audience: required for federation (//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>)',
        { where: 'backends.gcp.audience' },
      );
    }
  }

  /** The token source chosen from the settings (built on first use: reading an ADC file is I/O). */
  tokenSource(): TokenSource {
    return this.#tokenCache().source;
  }

  /** Tokens obtained so far (tests). */
  get tokensFetched(): number {
    return this.#tokens?.fetched ?? 0;
  }

  #tokenCache(): TokenCache {
    if (this.#tokens) return this.#tokens;
    const s = this.#settings;
    const env = this.#env;
    const envs: AuthEnv = { http: this.#http, timeoutMs: this.#timeoutMs, retry: this.#retry, env };
    const iamBase = s.iamCredentialsEndpoint ?? GCP_DEFAULT_IAM_CREDENTIALS;
    const stsUrl = `${(s.stsEndpoint ?? GCP_DEFAULT_STS).replace(/\/+$/, '')}/v1/token`;
    const mode = s.auth ?? (s.audience !== undefined ? 'federation' : adcFile(env) ? 'adc' : 'metadata');
    let source: TokenSource;
    if (mode === 'federation') {
      source = new FederationSource(
        {
          audience: s.audience!,
          tokenFile: s.tokenFile ?? GCP_DEFAULT_TOKEN_FILE,
          tokenFileSetting: s.tokenFile ? 'backends.gcp.tokenFile' : 'the projected token file',
          stsUrl,
        },
        envs,
      );
    } else if (mode === 'adc') {
      const found = adcFile(env);
      if (!found) {
        throw new SkError(
          'SK_ERR_BACKEND_CONFIG',
          'backends.gcp.auth: adc, but no credentials file (set GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`)',
          { where: 'backends.gcp.auth' },
        );
      }
      source = adcSource(found, envs, {
        ...(s.stsEndpoint ? { stsUrl } : {}),
        ...(s.iamCredentialsEndpoint ? { iamCredentialsBase: s.iamCredentialsEndpoint } : {}),
      });
    } else {
      source = new MetadataSource(s.metadataHost ?? env.GCE_METADATA_HOST ?? GCP_DEFAULT_METADATA_HOST, envs);
    }
    if (s.serviceAccount !== undefined) {
      source = new ImpersonationSource(
        source,
        s.serviceAccount,
        generateAccessTokenUrl(iamBase, s.serviceAccount),
        envs,
      );
    }
    this.#tokens = new TokenCache(source);
    return this.#tokens;
  }

  /** The project of short refs: settings, env, the credentials, the metadata server (asked once). */
  async #defaultProject(ref: SecretRef, signal: AbortSignal): Promise<string> {
    const s = this.#settings;
    const env = this.#env;
    const fromEnv = s.project ?? env.GOOGLE_CLOUD_PROJECT ?? env.GCLOUD_PROJECT ?? env.CLOUDSDK_CORE_PROJECT;
    if (fromEnv) return fromEnv;
    this.#project ??= (async () => {
      const src = this.#tokenCache().source; // may throw: caught below with the ref
      return src.project ? src.project(signal) : undefined;
    })().catch((e: unknown) => {
      this.#project = undefined;
      throw e;
    });
    let p: string | undefined;
    try {
      p = await this.#project;
    } catch (e) {
      throw prefixed(e, ref);
    }
    if (!p) {
      throw new SkError(
        'SK_ERR_BACKEND_CONFIG',
        `${ref.raw}: a short gcp: ref needs a project: set backends.gcp.project (sidekey.io/gcp-project) or GOOGLE_CLOUD_PROJECT, or write gcp:projects/<project>/secrets/<secret>`,
        { where: ref.raw },
      );
    }
    return p;
  }

  async fetch(ref: SecretRef, ctx: ProviderContext): Promise<FetchResult> {
    const loc = parseGcpRef(ref, ref.raw);
    const project = loc.project ?? (await this.#defaultProject(ref, ctx.signal));
    const name = `projects/${project}/secrets/${loc.secret}/versions/${loc.version}`;
    const call = `gcp versions.access ${name}`;
    const a = await this.#limiter.run(() => this.#call('versions.access', `${name}:access`, ref, call, ctx));
    if (a.status !== 200) {
      if (statusName(a) === 'FAILED_PRECONDITION') throw await this.#versionStateError(ref, loc, name, ctx);
      throw mapStatus(a, ref, call, 'secretmanager.versions.access');
    }
    return toResult(a, ref, call);
  }

  /** A FAILED_PRECONDITION on access: ask versions.get which version and which state, to say so. */
  async #versionStateError(
    ref: SecretRef,
    loc: GcpLocator,
    name: string,
    ctx: ProviderContext,
  ): Promise<SkError> {
    let state: string | undefined;
    let version = loc.version;
    try {
      const g = await this.#call('versions.get', name, ref, `gcp versions.get ${name}`, ctx);
      const b = g.status === 200 ? jsonBody(g) : undefined;
      if (isRecord(b)) {
        if (typeof b.state === 'string' && /^[A-Z_]{1,40}$/.test(b.state)) state = b.state;
        const n = typeof b.name === 'string' ? /\/versions\/(\d+)$/.exec(b.name)?.[1] : undefined;
        if (n) version = n;
      }
    } catch {
      // the access error is what matters; the state is a detail
    }
    const at = `${ref.raw}: gcp versions.access ${name}`;
    const which =
      loc.version === 'latest' && version !== 'latest'
        ? `the latest version (${version})`
        : `version ${version}`;
    if (state === 'DESTROYED') {
      return new SkError(
        'SK_ERR_SOURCE_NOT_FOUND',
        `${at}: ${which} is destroyed; point the ref at another version or add a new one`,
        {
          where: ref.raw,
        },
      );
    }
    if (state === 'DISABLED') {
      return new SkError(
        'SK_ERR_SOURCE_UNREADABLE',
        `${at}: ${which} is disabled; enable it or point the ref at another version`,
        {
          where: ref.raw,
        },
      );
    }
    return new SkError(
      'SK_ERR_SOURCE_UNREADABLE',
      `${at}: the version cannot be accessed in its current state (FAILED_PRECONDITION)`,
      {
        where: ref.raw,
      },
    );
  }

  /** One API GET with retries and one re-authentication on 401; network failures become SkErrors. */
  async #call(
    method: string,
    path: string,
    ref: SecretRef,
    call: string,
    ctx: ProviderContext,
  ): Promise<HttpAnswer> {
    let tokens: TokenCache;
    try {
      tokens = this.#tokenCache();
    } catch (e) {
      throw prefixed(e, ref);
    }
    const url = new URL(`${this.#endpoint}/v1/${path}`);
    for (let reauth = 0; ; reauth++) {
      let token = '';
      const sent = await sendWithRetry(
        this.#http,
        async () => {
          try {
            token = await tokens.get(ctx.signal);
          } catch (e) {
            throw prefixed(e, ref);
          }
          this.stats.requests++;
          this.stats.byMethod[method] = (this.stats.byMethod[method] ?? 0) + 1;
          return {
            method: 'GET',
            url,
            headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
            timeoutMs: this.#timeoutMs,
            signal: ctx.signal,
          };
        },
        { ...this.#retry, signal: ctx.signal },
      );
      if (sent.error) {
        const why =
          sent.error.code === 'ABORT_ERR'
            ? 'aborted'
            : `unreachable (${sent.error.code}) after ${sent.attempts} attempts`;
        throw new SkError('SK_ERR_BACKEND_UNAVAILABLE', `${ref.raw}: ${call}: ${why}`, { where: ref.raw });
      }
      const a = sent.answer!;
      if (a.status === 401 && reauth === 0) {
        tokens.invalidate(token);
        ctx.log.debug({ ref: ref.raw, call }, 'gcp: token refused (401), getting a new one');
        continue;
      }
      if (a.status === 429 || a.status >= 500) {
        const throttled = a.status === 429;
        const why = sent.retryAfterTooLong
          ? `${throttled ? 'throttled' : `answered HTTP ${a.status}`}; the API asked to retry later than 10 s`
          : `${throttled ? 'throttled (429 RESOURCE_EXHAUSTED)' : `answered ${statusName(a) ?? 'HTTP'} ${a.status}`} after ${sent.attempts} attempts`;
        throw new SkError('SK_ERR_BACKEND_UNAVAILABLE', `${ref.raw}: ${call}: ${why}`, { where: ref.raw });
      }
      return a;
    }
  }

  async close(): Promise<void> {
    this.#http.close();
  }
}

function baseUrl(u: string, setting: string): string {
  let parsed: URL;
  try {
    parsed = new URL(u);
  } catch {
    throw new SkError('SK_ERR_BACKEND_CONFIG', `${setting}: not a URL`, { where: setting });
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new SkError('SK_ERR_BACKEND_CONFIG', `${setting}: not an http(s) URL`, { where: setting });
  }
  return u.replace(/\/+$/, '');
}

/** An auth SkError, re-thrown with the ref in front (same code). */
function prefixed(e: unknown, ref: SecretRef): SkError {
  if (e instanceof SkError)
    return new SkError(e.code, `${ref.raw}: ${e.message}`, { where: e.where ?? ref.raw });
  return new SkError('SK_ERR_INTERNAL', `${ref.raw}: gcp auth failed unexpectedly`, { where: ref.raw });
}

/** The google.rpc.Status `status` of an error answer (`NOT_FOUND`), if it has one. */
function statusName(a: HttpAnswer): string | undefined {
  const b = jsonBody(a);
  const s = isRecord(b) && isRecord(b.error) ? b.error.status : undefined;
  return typeof s === 'string' && /^[A-Z_]{1,40}$/.test(s) ? s : undefined;
}

/** Map an error answer to an SkError naming the ref and the call. Google's message is not copied. */
export function mapStatus(a: HttpAnswer, ref: SecretRef, call: string, permission: string): SkError {
  const status = statusName(a);
  let code: ErrorCode;
  let why: string;
  if (status === 'NOT_FOUND' || (status === undefined && a.status === 404)) {
    code = 'SK_ERR_SOURCE_NOT_FOUND';
    why = 'secret or version not found (NOT_FOUND)';
  } else if (status === 'PERMISSION_DENIED' || (status === undefined && a.status === 403)) {
    code = 'SK_ERR_BACKEND_DENIED';
    why = `permission denied: the identity needs ${permission} (roles/secretmanager.secretAccessor) on the secret; Google also says this when the secret or project does not exist`;
  } else if (status === 'UNAUTHENTICATED' || a.status === 401) {
    code = 'SK_ERR_BACKEND_AUTH';
    why = 'the access token was refused twice (UNAUTHENTICATED)';
  } else if (status === 'INVALID_ARGUMENT' || a.status === 400) {
    code = 'SK_ERR_BACKEND_RESPONSE';
    why = `the API refused the request (${status ?? 'HTTP 400'})`;
  } else {
    code = 'SK_ERR_BACKEND_RESPONSE';
    why = `unexpected answer ${status ?? `HTTP ${a.status}`}`;
  }
  return new SkError(code, `${ref.raw}: ${call}: ${why}`, { where: ref.raw });
}

function toResult(a: HttpAnswer, ref: SecretRef, call: string): FetchResult {
  const garbage = (why: string) =>
    new SkError('SK_ERR_BACKEND_RESPONSE', `${ref.raw}: ${call}: ${why}`, { where: ref.raw });
  const b = jsonBody(a);
  if (!isRecord(b)) throw garbage('the answer is not JSON');
  const version = typeof b.name === 'string' ? /\/versions\/(\d+)$/.exec(b.name)?.[1] : undefined;
  if (!version) throw garbage('the answer names no version');
  const payload = b.payload;
  if (payload !== undefined && !isRecord(payload)) throw garbage('the answer has no payload');
  const data = isRecord(payload) ? payload.data : undefined;
  if (data !== undefined && (typeof data !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(data)))
    throw garbage('payload.data is not base64');
  const bytes = Buffer.from((data as string | undefined) ?? '', 'base64');
  const sum = isRecord(payload) ? payload.dataCrc32c : undefined;
  if (sum !== undefined) {
    const expected =
      typeof sum === 'string' && /^\d{1,10}$/.test(sum)
        ? Number(sum)
        : typeof sum === 'number'
          ? sum
          : Number.NaN;
    if (Number.isNaN(expected)) throw garbage('payload.dataCrc32c is not a number');
    if (crc32c(bytes) !== expected)
      throw garbage('the payload does not match its CRC32C checksum (corrupted in transit)');
  }
  let value: SecretValue = { kind: 'bytes', bytes };
  if (ref.key !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    if (!isRecord(parsed)) {
      throw new SkError(
        'SK_ERR_SOURCE_UNREADABLE',
        `${ref.raw}: ${call}: #${ref.key} given, but version ${version}'s payload is not a JSON object`,
        { where: ref.raw },
      );
    }
    value = { kind: 'map', data: parsed };
  }
  return { value, version };
}
