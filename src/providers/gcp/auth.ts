import { createSign } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ErrorCode, SkError } from '../../errors.js';
import { isRecord } from '../../is-record.js';
import { type HttpAnswer, type HttpClient, type HttpRequest, jsonBody } from './http.js';
import { type RetryOptions, sendWithRetry } from './retry.js';

/**
 * Google access tokens for the `gcp:` provider, without a Google library (see docs/backends.md for
 * the measured reason). Each source is one documented HTTP exchange:
 *
 * - `metadata`: GKE Workload Identity (and any GCE/Cloud Run workload): `GET
 *   http://<metadata host>/computeMetadata/v1/instance/service-accounts/default/token` with
 *   `Metadata-Flavor: Google`.
 * - `federation`: Workload Identity Federation on any other cluster: the projected Kubernetes token
 *   (`tokenFile`) is exchanged at STS (`POST <sts>/v1/token`, RFC 8693 token exchange) for a federated
 *   access token.
 * - `adc`: Application Default Credentials from `GOOGLE_APPLICATION_CREDENTIALS` or gcloud's
 *   `application_default_credentials.json`: `authorized_user` (refresh token), `service_account` (a
 *   key: an RS256 JWT assertion) or `external_account` (file-sourced federation, as above).
 *
 * With `serviceAccount` (or an `external_account` file's `service_account_impersonation_url`), the
 * token is then traded for one of that Google service account (`POST <iamcredentials>/v1/projects/-/
 * serviceAccounts/<email>:generateAccessToken`).
 *
 * Errors name the exchange and the setting, never a token, a key or Google's error description.
 */

export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

export interface AccessToken {
  readonly token: string;
  /** Epoch ms. */
  readonly expiresAt: number;
}

/** Shared by every source: the HTTP client, timeouts, retries. */
export interface AuthEnv {
  readonly http: HttpClient;
  readonly timeoutMs: number;
  readonly retry?: RetryOptions;
  readonly env: NodeJS.ProcessEnv;
}

export interface TokenSource {
  /** What it is, for messages: `metadata server 169.254.169.254`, `STS token exchange`, … */
  readonly describe: string;
  token(signal: AbortSignal | undefined): Promise<AccessToken>;
  /** Project known to the credentials (ADC file, metadata server), for short refs. */
  project?(signal: AbortSignal | undefined): Promise<string | undefined>;
}

function authError(code: ErrorCode, what: string, why: string, where?: string): SkError {
  return new SkError(code, `gcp ${what}: ${why}`, where ? { where } : undefined);
}

/** POST/GET with retries; maps network failures and 5xx/429 to SK_ERR_BACKEND_UNAVAILABLE naming `what`. */
async function send(
  env: AuthEnv,
  what: string,
  build: () => HttpRequest,
  signal: AbortSignal | undefined,
): Promise<HttpAnswer> {
  const sent = await sendWithRetry(env.http, build, { ...env.retry, signal });
  if (sent.error) {
    throw authError(
      'SK_ERR_BACKEND_UNAVAILABLE',
      what,
      sent.error.code === 'ABORT_ERR' ? 'aborted' : `unreachable (${sent.error.code})`,
    );
  }
  const a = sent.answer!;
  if (a.status === 429 || a.status >= 500) {
    throw authError(
      'SK_ERR_BACKEND_UNAVAILABLE',
      what,
      `answered HTTP ${a.status} after ${sent.attempts} attempts`,
    );
  }
  return a;
}

function expiresAt(seconds: unknown, now = Date.now()): number {
  const s = typeof seconds === 'number' ? seconds : Number(seconds);
  return now + (Number.isFinite(s) && s > 0 ? s : 300) * 1000;
}

/** An OAuth error answer's `error` code (`invalid_grant`), or the google.rpc status (`PERMISSION_DENIED`): never the description. */
function errorName(a: HttpAnswer): string {
  const b = jsonBody(a);
  if (isRecord(b)) {
    if (typeof b.error === 'string' && /^[a-z_]{1,64}$/.test(b.error)) return b.error;
    if (isRecord(b.error) && typeof b.error.status === 'string' && /^[A-Z_]{1,64}$/.test(b.error.status))
      return b.error.status;
  }
  return `HTTP ${a.status}`;
}

/** GKE Workload Identity / GCE: the metadata server. */
export class MetadataSource implements TokenSource {
  readonly describe: string;
  readonly #base: string;
  constructor(
    readonly host: string,
    private readonly envs: AuthEnv,
  ) {
    this.#base = `http://${host}/computeMetadata/v1/`;
    this.describe = `metadata server ${host}`;
  }

  async #get(p: string, signal: AbortSignal | undefined): Promise<HttpAnswer> {
    const what = `${this.describe} GET ${p}`;
    const a = await send(
      this.envs,
      what,
      () => ({
        method: 'GET',
        url: new URL(p, this.#base),
        headers: { 'Metadata-Flavor': 'Google' },
        timeoutMs: this.envs.timeoutMs,
        signal,
      }),
      signal,
    );
    if (a.headers['metadata-flavor'] !== 'Google') {
      throw authError(
        'SK_ERR_BACKEND_AUTH',
        what,
        'the answer is not from a metadata server (no Metadata-Flavor: Google); on GKE, enable Workload Identity on the node pool',
      );
    }
    if (a.status === 404) {
      throw authError(
        'SK_ERR_BACKEND_AUTH',
        what,
        'no service account for this workload (404); bind the Kubernetes service account to a Google one, or set backends.gcp.audience for federation',
      );
    }
    if (a.status !== 200) throw authError('SK_ERR_BACKEND_AUTH', what, `answered ${errorName(a)}`);
    return a;
  }

  async token(signal: AbortSignal | undefined): Promise<AccessToken> {
    const p = 'instance/service-accounts/default/token';
    const a = await this.#get(p, signal);
    const b = jsonBody(a);
    if (!isRecord(b) || typeof b.access_token !== 'string' || b.access_token === '') {
      throw authError('SK_ERR_BACKEND_RESPONSE', `${this.describe} GET ${p}`, 'answer without access_token');
    }
    return { token: b.access_token, expiresAt: expiresAt(b.expires_in) };
  }

  async project(signal: AbortSignal | undefined): Promise<string | undefined> {
    const a = await this.#get('project/project-id', signal);
    const id = a.body.toString('utf8').trim();
    return id === '' ? undefined : id;
  }
}

export interface FederationConfig {
  /** STS audience: the workload identity pool provider's resource name. */
  readonly audience: string;
  readonly tokenFile: string;
  /** Which setting named the file (for messages). */
  readonly tokenFileSetting: string;
  readonly stsUrl: string;
  /** When the subject token file is JSON, the field holding the token (external_account `format`). */
  readonly jsonField?: string;
}

/** Workload Identity Federation: the Kubernetes token exchanged at Google's STS. */
export class FederationSource implements TokenSource {
  readonly describe = 'STS token exchange';
  constructor(
    readonly cfg: FederationConfig,
    private readonly envs: AuthEnv,
  ) {}

  #subjectToken(): string {
    const { tokenFile, tokenFileSetting, jsonField } = this.cfg;
    let text: string;
    try {
      text = readFileSync(tokenFile, 'utf8').trim();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
      throw authError(
        code === 'ENOENT' ? 'SK_ERR_BACKEND_CONFIG' : 'SK_ERR_BACKEND_AUTH',
        'STS token exchange',
        code === 'ENOENT'
          ? `${tokenFileSetting} ${tokenFile} does not exist (the projected service-account token; is the pod injected with the gcp audience?)`
          : `${tokenFileSetting} ${tokenFile} cannot be read (${code})`,
        tokenFileSetting,
      );
    }
    if (jsonField !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      const v = isRecord(parsed) ? parsed[jsonField] : undefined;
      if (typeof v !== 'string') {
        throw authError(
          'SK_ERR_BACKEND_AUTH',
          'STS token exchange',
          `${tokenFile} has no "${jsonField}" field`,
        );
      }
      text = v;
    }
    if (text === '') throw authError('SK_ERR_BACKEND_AUTH', 'STS token exchange', `${tokenFile} is empty`);
    return text;
  }

  async token(signal: AbortSignal | undefined): Promise<AccessToken> {
    const subject = this.#subjectToken();
    const what = `STS token exchange (POST ${this.cfg.stsUrl})`;
    const body = new URLSearchParams({
      grant_type: TOKEN_EXCHANGE,
      audience: this.cfg.audience,
      scope: CLOUD_PLATFORM_SCOPE,
      requested_token_type: ACCESS_TOKEN_TYPE,
      subject_token: subject,
      subject_token_type: JWT_TOKEN_TYPE,
    }).toString();
    const a = await send(
      this.envs,
      what,
      () => ({
        method: 'POST',
        url: new URL(this.cfg.stsUrl),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
        timeoutMs: this.envs.timeoutMs,
        signal,
      }),
      signal,
    );
    if (a.status !== 200) {
      throw authError(
        'SK_ERR_BACKEND_AUTH',
        what,
        `refused (${errorName(a)}): check that backends.gcp.audience names the workload identity pool provider and that the provider trusts this cluster's issuer and the token's audience`,
        'backends.gcp.audience',
      );
    }
    const b = jsonBody(a);
    if (!isRecord(b) || typeof b.access_token !== 'string' || b.access_token === '') {
      throw authError('SK_ERR_BACKEND_RESPONSE', what, 'answer without access_token');
    }
    return { token: b.access_token, expiresAt: expiresAt(b.expires_in) };
  }
}

/** A token of `serviceAccount`, obtained with the base source's token (iamcredentials generateAccessToken). */
export class ImpersonationSource implements TokenSource {
  readonly describe: string;
  constructor(
    readonly base: TokenSource,
    readonly serviceAccount: string,
    /** The full generateAccessToken URL. */
    readonly url: string,
    private readonly envs: AuthEnv,
  ) {
    this.describe = `${base.describe} + impersonation of ${serviceAccount}`;
  }

  async token(signal: AbortSignal | undefined): Promise<AccessToken> {
    const base = await this.base.token(signal);
    const what = `iamcredentials generateAccessToken for ${this.serviceAccount}`;
    const a = await send(
      this.envs,
      what,
      () => ({
        method: 'POST',
        url: new URL(this.url),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${base.token}` },
        body: JSON.stringify({ scope: [CLOUD_PLATFORM_SCOPE], lifetime: '3600s' }),
        timeoutMs: this.envs.timeoutMs,
        signal,
      }),
      signal,
    );
    if (a.status === 403 || a.status === 404) {
      throw authError(
        'SK_ERR_BACKEND_DENIED',
        what,
        `denied (${errorName(a)}): the workload's identity needs roles/iam.workloadIdentityUser (or serviceAccountTokenCreator) on ${this.serviceAccount}`,
        'backends.gcp.serviceAccount',
      );
    }
    if (a.status !== 200) throw authError('SK_ERR_BACKEND_AUTH', what, `refused (${errorName(a)})`);
    const b = jsonBody(a);
    const exp = isRecord(b) && typeof b.expireTime === 'string' ? Date.parse(b.expireTime) : Number.NaN;
    if (!isRecord(b) || typeof b.accessToken !== 'string' || b.accessToken === '') {
      throw authError('SK_ERR_BACKEND_RESPONSE', what, 'answer without accessToken');
    }
    return { token: b.accessToken, expiresAt: Number.isNaN(exp) ? Date.now() + 300_000 : exp };
  }

  project(signal: AbortSignal | undefined): Promise<string | undefined> {
    return this.base.project?.(signal) ?? Promise.resolve(undefined);
  }
}

/** ADC `authorized_user` (gcloud auth application-default login): a refresh token. */
class AuthorizedUserSource implements TokenSource {
  readonly describe: string;
  constructor(
    file: string,
    private readonly creds: {
      client_id: string;
      client_secret: string;
      refresh_token: string;
      token_uri: string;
    },
    private readonly quotaProject: string | undefined,
    private readonly envs: AuthEnv,
  ) {
    this.describe = `user credentials in ${file}`;
  }
  async token(signal: AbortSignal | undefined): Promise<AccessToken> {
    return oauthToken(
      this.envs,
      `${this.describe} (POST ${this.creds.token_uri})`,
      this.creds.token_uri,
      new URLSearchParams({
        grant_type: 'refresh_token',
        client_id: this.creds.client_id,
        client_secret: this.creds.client_secret,
        refresh_token: this.creds.refresh_token,
      }),
      'run `gcloud auth application-default login` again',
      signal,
    );
  }
  async project(): Promise<string | undefined> {
    return this.quotaProject;
  }
}

/** ADC `service_account`: a key file; the token is obtained with an RS256-signed JWT assertion. */
class ServiceAccountKeySource implements TokenSource {
  readonly describe: string;
  constructor(
    file: string,
    private readonly key: {
      client_email: string;
      private_key: string;
      token_uri: string;
      project_id?: string;
    },
    private readonly envs: AuthEnv,
  ) {
    this.describe = `service account key ${file}`;
  }
  async token(signal: AbortSignal | undefined): Promise<AccessToken> {
    const now = Math.floor(Date.now() / 1000);
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({
      iss: this.key.client_email,
      scope: CLOUD_PLATFORM_SCOPE,
      aud: this.key.token_uri,
      iat: now,
      exp: now + 3600,
    })}`;
    let sig: string;
    try {
      sig = createSign('RSA-SHA256').update(unsigned).sign(this.key.private_key, 'base64url');
    } catch {
      throw authError('SK_ERR_BACKEND_CONFIG', this.describe, 'private_key is not a usable RSA key');
    }
    return oauthToken(
      this.envs,
      `${this.describe} (POST ${this.key.token_uri})`,
      this.key.token_uri,
      new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion: `${unsigned}.${sig}`,
      }),
      'the key may be disabled or deleted',
      signal,
    );
  }
  async project(): Promise<string | undefined> {
    return this.key.project_id;
  }
}

async function oauthToken(
  envs: AuthEnv,
  what: string,
  url: string,
  form: URLSearchParams,
  hint: string,
  signal: AbortSignal | undefined,
): Promise<AccessToken> {
  const body = form.toString();
  const a = await send(
    envs,
    what,
    () => ({
      method: 'POST',
      url: new URL(url),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
      timeoutMs: envs.timeoutMs,
      signal,
    }),
    signal,
  );
  if (a.status !== 200) throw authError('SK_ERR_BACKEND_AUTH', what, `refused (${errorName(a)}); ${hint}`);
  const b = jsonBody(a);
  if (!isRecord(b) || typeof b.access_token !== 'string' || b.access_token === '') {
    throw authError('SK_ERR_BACKEND_RESPONSE', what, 'answer without access_token');
  }
  return { token: b.access_token, expiresAt: expiresAt(b.expires_in) };
}

/** Where ADC looks: GOOGLE_APPLICATION_CREDENTIALS, else gcloud's well-known file (undefined if neither exists). */
export function adcFile(env: NodeJS.ProcessEnv): { file: string; setting: string } | undefined {
  if (env.GOOGLE_APPLICATION_CREDENTIALS) {
    return { file: env.GOOGLE_APPLICATION_CREDENTIALS, setting: 'GOOGLE_APPLICATION_CREDENTIALS' };
  }
  const dir = env.CLOUDSDK_CONFIG ?? path.join(env.HOME ?? os.homedir(), '.config', 'gcloud');
  const file = path.join(dir, 'application_default_credentials.json');
  return existsSync(file) ? { file, setting: 'the gcloud application default credentials' } : undefined;
}

const str = (o: Record<string, unknown>, k: string): string | undefined =>
  typeof o[k] === 'string' && o[k] !== '' ? (o[k] as string) : undefined;

/** Build the token source for an ADC file (`authorized_user`, `service_account`, `external_account`). */
export function adcSource(
  found: { file: string; setting: string },
  envs: AuthEnv,
  overrides: { stsUrl?: string; iamCredentialsBase?: string },
): TokenSource {
  const { file, setting } = found;
  const bad = (why: string): never => {
    throw authError('SK_ERR_BACKEND_CONFIG', `credentials ${file} (${setting})`, why, setting);
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return bad(code === 'ENOENT' ? 'does not exist' : code ? `cannot be read (${code})` : 'is not JSON');
  }
  if (!isRecord(parsed)) return bad('is not a JSON object');
  const type = str(parsed, 'type');
  if (type === 'authorized_user') {
    const client_id = str(parsed, 'client_id');
    const client_secret = str(parsed, 'client_secret');
    const refresh_token = str(parsed, 'refresh_token');
    if (!client_id || !client_secret || !refresh_token)
      return bad('authorized_user needs client_id, client_secret and refresh_token');
    return new AuthorizedUserSource(
      file,
      { client_id, client_secret, refresh_token, token_uri: str(parsed, 'token_uri') ?? GOOGLE_TOKEN_URL },
      str(parsed, 'quota_project_id'),
      envs,
    );
  }
  if (type === 'service_account') {
    const client_email = str(parsed, 'client_email');
    const private_key = str(parsed, 'private_key');
    if (!client_email || !private_key) return bad('service_account needs client_email and private_key');
    const project_id = str(parsed, 'project_id');
    return new ServiceAccountKeySource(
      file,
      {
        client_email,
        private_key,
        token_uri: str(parsed, 'token_uri') ?? GOOGLE_TOKEN_URL,
        ...(project_id ? { project_id } : {}),
      },
      envs,
    );
  }
  if (type === 'external_account') {
    const audience = str(parsed, 'audience');
    const src = isRecord(parsed.credential_source) ? parsed.credential_source : undefined;
    const tokenFile = src ? str(src, 'file') : undefined;
    if (!audience || !tokenFile)
      return bad(
        'external_account needs audience and credential_source.file (URL and executable sources are not supported)',
      );
    const fmt = src && isRecord(src.format) ? src.format : undefined;
    const jsonField = fmt && str(fmt, 'type') === 'json' ? str(fmt, 'subject_token_field_name') : undefined;
    const fed = new FederationSource(
      {
        audience,
        tokenFile,
        tokenFileSetting: `${file} credential_source.file`,
        stsUrl: overrides.stsUrl ?? str(parsed, 'token_url') ?? 'https://sts.googleapis.com/v1/token',
        ...(jsonField ? { jsonField } : {}),
      },
      envs,
    );
    const imp = str(parsed, 'service_account_impersonation_url');
    if (!imp) return fed;
    const m = /serviceAccounts\/([^/:]+):generateAccessToken$/.exec(imp);
    if (!m) return bad('service_account_impersonation_url is not a generateAccessToken URL');
    const url = overrides.iamCredentialsBase
      ? generateAccessTokenUrl(overrides.iamCredentialsBase, m[1]!)
      : imp;
    return new ImpersonationSource(fed, decodeURIComponent(m[1]!), url, envs);
  }
  return bad(`has type ${type ?? '(none)'}; expected authorized_user, service_account or external_account`);
}

export function generateAccessTokenUrl(base: string, serviceAccount: string): string {
  return `${base.replace(/\/+$/, '')}/v1/projects/-/serviceAccounts/${encodeURIComponent(serviceAccount)}:generateAccessToken`;
}

/**
 * One token for the whole agent: fetched on first use, shared by concurrent callers, refreshed when
 * less than a third of its life (at most 5 minutes) is left, or at once after a 401.
 */
export class TokenCache {
  #current: AccessToken | undefined;
  #obtainedAt = 0;
  #pending: Promise<AccessToken> | undefined;
  /** Tokens obtained (tests, bench). */
  fetched = 0;

  constructor(readonly source: TokenSource) {}

  async get(signal: AbortSignal | undefined): Promise<string> {
    const c = this.#current;
    const now = Date.now();
    if (c) {
      const margin = Math.min(300_000, (c.expiresAt - this.#obtainedAt) / 3);
      if (c.expiresAt - now > margin) return c.token;
    }
    this.#pending ??= this.source.token(signal).then(
      (t) => {
        this.#current = t;
        this.#obtainedAt = Date.now();
        this.fetched++;
        this.#pending = undefined;
        return t;
      },
      (e: unknown) => {
        this.#pending = undefined;
        throw e;
      },
    );
    return (await this.#pending).token;
  }

  /** Drop the token (the API answered 401 with it). */
  invalidate(token: string): void {
    if (this.#current?.token === token) this.#current = undefined;
  }
}
