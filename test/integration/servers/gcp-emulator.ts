import { createSign, createVerify, generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32c } from '../../../src/providers/gcp/crc32c.ts';

/**
 * An EMULATOR of the Google Cloud APIs the `gcp:` provider talks to, at the HTTP wire level, written
 * from Google's published API reference (no real server can be installed here: Google ships no
 * Secret Manager emulator). One loopback server on a free port serves all of them, by path:
 *
 * - Secret Manager v1 REST: `GET …/versions/{v}:access` (payload base64 + `dataCrc32c` as an int64
 *   string; `latest` = the most recently created version, whatever its state), `GET …/versions/{v}`
 *   (SecretVersion with `state`), `POST projects/{p}/secrets?secretId=` (create), `POST
 *   …/secrets/{s}:addVersion` (checks a client-specified `dataCrc32c`), `POST …/versions/{v}:disable
 *   | :enable | :destroy`, `GET`/`DELETE …/secrets/{s}`. Names in answers use the project NUMBER, as
 *   the real API does. Errors are google.rpc.Status JSON: `{"error":{"code","message","status"}}`.
 *   IAM is checked before existence (a caller without access gets PERMISSION_DENIED "or it may not
 *   exist", like the real service).
 * - STS v1 `POST /v1/token` (RFC 8693 token exchange, form or JSON body): the subject token must be a
 *   JWT signed by the emulated cluster's issuer key ({@link GcpEmulator.mintK8sToken}), with `aud`
 *   equal to an allowed audience of the configured workload identity pool provider, not expired;
 *   errors are OAuth `{"error","error_description"}` with 400.
 * - IAM Service Account Credentials `POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken`
 *   (bearer = the caller; allowed per {@link GcpEmulator.allowImpersonation}).
 * - The metadata server: `GET /computeMetadata/v1/instance/service-accounts/default/token` (needs
 *   `Metadata-Flavor: Google`; answers carry it), `…/project/project-id`, `…/default/email`.
 * - An OAuth 2 token endpoint `POST /token` for ADC files: `refresh_token` (authorized_user) and
 *   `jwt-bearer` (service account key, RS256 signature checked).
 *
 * Every access token is one the emulator issued, bound to a principal, with an expiry; Secret Manager
 * checks it (401 UNAUTHENTICATED otherwise) and the principal's grants (403).
 *
 * Test controls: secrets and versions, grants, token revocation and lifetime, and faults injected per
 * route ({@link GcpEmulator.fault}: denied, unauthenticated, unavailable, internal, throttled with
 * Retry-After / RetryInfo, a garbage body, a wrong CRC32C, a reset connection), plus request logs.
 */

export type Route = 'access' | 'get' | 'admin' | 'sts' | 'iam' | 'metadata' | 'oauth';
export type FaultKind =
  | 'denied'
  | 'unauthenticated'
  | 'unavailable'
  | 'internal'
  | 'throttled'
  | 'garbage'
  | 'badcrc'
  | 'reset';

interface Fault {
  route: Route | 'any';
  kind: FaultKind;
  remaining: number;
  retryAfter?: string;
  retryDelay?: string;
}

interface Version {
  n: number;
  data: Buffer;
  state: 'ENABLED' | 'DISABLED' | 'DESTROYED';
  createTime: string;
  destroyTime?: string;
}

interface Secret {
  id: string;
  createTime: string;
  versions: Version[];
}

interface Issued {
  principal: string;
  expiresAt: number;
}

export interface GcpEmulatorOptions {
  projectId?: string;
  projectNumber?: string;
  /** The Google service account the metadata server serves tokens of (undefined: 404, no identity). */
  metadataServiceAccount?: string;
  /** Lifetime of issued access tokens, in seconds. */
  tokenLifetimeSec?: number;
}

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

export class GcpEmulator {
  readonly server: http.Server;
  readonly projectId: string;
  readonly projectNumber: string;
  /** The workload identity pool provider (STS `audience`). */
  readonly providerName: string;
  /** Audiences the provider accepts in the subject token (Google's default: `https:` + provider name). */
  readonly allowedAudiences: string[];
  metadataServiceAccount: string | undefined;
  tokenLifetimeSec: number;
  url = '';
  readonly #secrets = new Map<string, Secret>();
  readonly #tokens = new Map<string, Issued>();
  /** principal → secret ids it may access (`*`: all). */
  readonly #grants = new Map<string, Set<string>>();
  /** service account email → principals that may impersonate it. */
  readonly #impersonators = new Map<string, Set<string>>();
  readonly #refreshTokens = new Map<string, string>();
  readonly #saKeys = new Map<string, string>();
  readonly #faults: Fault[] = [];
  readonly #issuer = generateKeyPairSync('rsa', { modulusLength: 2048 });
  /** Every request: route, method, path (no query), time (epoch ms), principal when authenticated. */
  readonly log: Array<{
    route: Route | 'other';
    method: string;
    path: string;
    at: number;
    principal?: string;
  }> = [];
  /** A token with every right (for the test's own admin calls). */
  readonly adminToken: string;

  constructor(opts: GcpEmulatorOptions = {}) {
    this.projectId = opts.projectId ?? 'sk-emulated';
    this.projectNumber = opts.projectNumber ?? '123456789012';
    this.providerName = `//iam.googleapis.com/projects/${this.projectNumber}/locations/global/workloadIdentityPools/k8s-pool/providers/k8s`;
    this.allowedAudiences = [`https:${this.providerName}`];
    this.metadataServiceAccount = opts.metadataServiceAccount;
    this.tokenLifetimeSec = opts.tokenLifetimeSec ?? 3600;
    this.adminToken = this.#issue('admin', 10 * 365 * 86400);
    this.grant('admin', '*');
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (b: Buffer) => chunks.push(b));
      req.on('end', () => {
        try {
          this.#handle(req, res, Buffer.concat(chunks));
        } catch (e) {
          this.#status(res, 500, 'INTERNAL', `emulator bug: ${(e as Error).message}`);
        }
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  /** `host:port`, for GCE_METADATA_HOST / backends.gcp.metadataHost. */
  get host(): string {
    return this.url.replace(/^http:\/\//, '');
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  // ---- test controls ---------------------------------------------------------------------------

  /** Create a secret (no versions) if it does not exist. */
  createSecret(id: string): void {
    if (!this.#secrets.has(id))
      this.#secrets.set(id, { id, createTime: new Date().toISOString(), versions: [] });
  }

  /** Add a version (creating the secret); returns its number. */
  addVersion(id: string, data: string | Buffer): number {
    this.createSecret(id);
    const s = this.#secrets.get(id)!;
    const n = s.versions.length + 1;
    s.versions.push({ n, data: Buffer.from(data), state: 'ENABLED', createTime: new Date().toISOString() });
    return n;
  }

  setState(id: string, n: number, state: 'ENABLED' | 'DISABLED' | 'DESTROYED'): void {
    const v = this.#secrets.get(id)?.versions[n - 1];
    if (!v) throw new Error(`emulator: no version ${n} of ${id}`);
    if (v.state === 'DESTROYED' && state !== 'DESTROYED')
      throw new Error('emulator: a destroyed version stays destroyed');
    v.state = state;
    if (state === 'DESTROYED') {
      v.data = Buffer.alloc(0);
      v.destroyTime = new Date().toISOString();
    }
  }

  deleteSecret(id: string): void {
    this.#secrets.delete(id);
  }

  /** Let `principal` access `secret` (`*` for every secret). */
  grant(principal: string, secret: string): void {
    const g = this.#grants.get(principal) ?? new Set<string>();
    g.add(secret);
    this.#grants.set(principal, g);
  }

  revoke(principal: string, secret: string): void {
    this.#grants.get(principal)?.delete(secret);
  }

  /** Let `principal` mint tokens of the Google service account `email` (workloadIdentityUser / tokenCreator). */
  allowImpersonation(email: string, principal: string): void {
    const s = this.#impersonators.get(email) ?? new Set<string>();
    s.add(principal);
    this.#impersonators.set(email, s);
  }

  /** The principal STS gives a Kubernetes subject (`system:serviceaccount:<ns>:<sa>`). */
  federatedPrincipal(subject: string): string {
    return `principal://iam.googleapis.com/projects/${this.projectNumber}/locations/global/workloadIdentityPools/k8s-pool/subject/${subject}`;
  }

  /** A projected service-account token of the emulated cluster (RS256 JWT signed by its issuer key). */
  mintK8sToken(claims: { sub: string; aud?: string | string[]; expiresInSec?: number }): string {
    const now = Math.floor(Date.now() / 1000);
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${b64({ alg: 'RS256', typ: 'JWT', kid: 'emulated' })}.${b64({
      iss: 'https://kubernetes.emulated.local',
      sub: claims.sub,
      aud: claims.aud ?? this.allowedAudiences[0],
      iat: now,
      exp: now + (claims.expiresInSec ?? 3600),
    })}`;
    return `${unsigned}.${createSign('RSA-SHA256').update(unsigned).sign(this.#issuer.privateKey, 'base64url')}`;
  }

  /** An authorized_user refresh token (gcloud ADC) for `principal`. */
  addRefreshToken(principal: string): string {
    const t = `1//${randomBytes(12).toString('hex')}`;
    this.#refreshTokens.set(t, principal);
    return t;
  }

  /** A service-account key (PEM private key) the OAuth endpoint accepts for `email`. */
  addServiceAccountKey(email: string): string {
    const kp = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.#saKeys.set(email, kp.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    return kp.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  }

  /** Forget every issued token except the admin's (the next API call with one gets 401). */
  revokeTokens(): void {
    for (const t of [...this.#tokens.keys()]) if (t !== this.adminToken) this.#tokens.delete(t);
  }

  /** Make the next `times` requests to `route` fail with `kind`. */
  fault(
    route: Route | 'any',
    kind: FaultKind,
    times = 1,
    opts: { retryAfter?: string; retryDelay?: string } = {},
  ): void {
    this.#faults.push({ route, kind, remaining: times, ...opts });
  }

  clearFaults(): void {
    this.#faults.length = 0;
  }

  count(route: Route): number {
    return this.log.filter((l) => l.route === route).length;
  }

  // ---- HTTP ------------------------------------------------------------------------------------

  #issue(principal: string, lifetimeSec = this.tokenLifetimeSec): string {
    const t = `ya29.emu-${randomBytes(16).toString('hex')}`;
    this.#tokens.set(t, { principal, expiresAt: Date.now() + lifetimeSec * 1000 });
    return t;
  }

  #json(
    res: http.ServerResponse,
    code: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): undefined {
    res.writeHead(code, { 'content-type': 'application/json; charset=UTF-8', ...headers });
    res.end(JSON.stringify(body));
  }

  /** A google.rpc.Status error answer. */
  #status(
    res: http.ServerResponse,
    code: number,
    status: string,
    message: string,
    extra: { headers?: Record<string, string>; details?: unknown[] } = {},
  ): undefined {
    this.#json(
      res,
      code,
      { error: { code, message, status, ...(extra.details ? { details: extra.details } : {}) } },
      extra.headers,
    );
  }

  #routeOf(method: string, p: string): Route | 'other' {
    if (p.startsWith('/computeMetadata/')) return 'metadata';
    if (method === 'POST' && p === '/v1/token') return 'sts';
    if (method === 'POST' && p === '/token') return 'oauth';
    if (method === 'POST' && /^\/v1\/projects\/-\/serviceAccounts\/[^/]+:generateAccessToken$/.test(p))
      return 'iam';
    if (method === 'GET' && /^\/v1\/projects\/[^/]+\/secrets\/[^/]+\/versions\/[^/:]+:access$/.test(p))
      return 'access';
    if (method === 'GET' && /^\/v1\/projects\/[^/]+\/secrets\/[^/]+\/versions\/[^/:]+$/.test(p)) return 'get';
    if (p.startsWith('/v1/projects/')) return 'admin';
    return 'other';
  }

  /** Apply an injected fault; true if it answered. */
  #applyFault(route: Route | 'other', res: http.ServerResponse): Fault | undefined {
    const f = this.#faults.find((x) => x.remaining > 0 && (x.route === 'any' || x.route === route));
    if (!f) return undefined;
    f.remaining--;
    const meta: Record<string, string> = route === 'metadata' ? { 'Metadata-Flavor': 'Google' } : {};
    switch (f.kind) {
      case 'denied':
        if (route === 'sts')
          this.#json(res, 400, { error: 'invalid_grant', error_description: 'emulated denial' });
        else
          this.#status(res, 403, 'PERMISSION_DENIED', 'Permission denied (emulated fault).', {
            headers: meta,
          });
        return f;
      case 'unauthenticated':
        this.#status(res, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.', {
          headers: meta,
        });
        return f;
      case 'unavailable':
        this.#status(res, 503, 'UNAVAILABLE', 'The service is currently unavailable.', { headers: meta });
        return f;
      case 'internal':
        this.#status(res, 500, 'INTERNAL', 'Internal error encountered.', { headers: meta });
        return f;
      case 'throttled':
        this.#status(res, 429, 'RESOURCE_EXHAUSTED', 'Quota exceeded for quota metric Access requests.', {
          headers: { ...meta, ...(f.retryAfter ? { 'retry-after': f.retryAfter } : {}) },
          ...(f.retryDelay
            ? { details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: f.retryDelay }] }
            : {}),
        });
        return f;
      case 'garbage':
        res.writeHead(200, { 'content-type': 'text/html', ...meta });
        res.end('<html><body>502 upstream hiccup</body></html>');
        return f;
      case 'reset':
        res.socket?.destroy();
        return f;
      case 'badcrc':
        return f; // applied by the access handler
    }
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): undefined {
    const u = new URL(req.url ?? '/', 'http://emulator');
    const method = req.method ?? 'GET';
    const p = decodeURIComponent(u.pathname);
    const route = this.#routeOf(method, p);
    const entry: (typeof this.log)[number] = { route, method, path: p, at: Date.now() };
    this.log.push(entry);
    const fault = this.#applyFault(route, res);
    if (fault && fault.kind !== 'badcrc') return;

    if (route === 'metadata') return this.#metadata(req, res, p);
    if (route === 'sts') return this.#sts(req, res, body);
    if (route === 'oauth') return this.#oauth(res, body);

    // Everything else is a Google API with a bearer token.
    const auth = req.headers.authorization ?? '';
    const token = /^Bearer (.+)$/.exec(auth)?.[1];
    const issued = token ? this.#tokens.get(token) : undefined;
    if (!issued || issued.expiresAt <= Date.now()) {
      return this.#status(
        res,
        401,
        'UNAUTHENTICATED',
        'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
        { headers: { 'www-authenticate': 'Bearer realm="https://accounts.google.com/"' } },
      );
    }
    entry.principal = issued.principal;
    if (route === 'iam') return this.#generateAccessToken(res, p, issued.principal);
    return this.#secretManager(req, res, method, p, u, body, issued.principal, fault?.kind === 'badcrc');
  }

  #metadata(req: http.IncomingMessage, res: http.ServerResponse, p: string): undefined {
    const flavor = { 'Metadata-Flavor': 'Google' };
    if (req.headers['metadata-flavor'] !== 'Google') {
      res.writeHead(403, { 'content-type': 'text/html', ...flavor });
      res.end('Missing required header "Metadata-Flavor": "Google"');
      return;
    }
    const text = (code: number, s: string): undefined => {
      res.writeHead(code, { 'content-type': 'application/text', ...flavor });
      res.end(s);
    };
    if (p === '/computeMetadata/v1/project/project-id') return text(200, this.projectId);
    if (p === '/computeMetadata/v1/project/numeric-project-id') return text(200, this.projectNumber);
    const sa = this.metadataServiceAccount;
    if (p === '/computeMetadata/v1/instance/service-accounts/default/email')
      return sa ? text(200, sa) : text(404, 'Not Found');
    if (p === '/computeMetadata/v1/instance/service-accounts/default/token') {
      if (!sa) return text(404, 'Not Found');
      return this.#json(
        res,
        200,
        {
          access_token: this.#issue(`serviceAccount:${sa}`),
          expires_in: this.tokenLifetimeSec,
          token_type: 'Bearer',
        },
        flavor,
      );
    }
    if (
      p === '/computeMetadata/v1/' ||
      p === '/computeMetadata/v1/instance' ||
      p === '/computeMetadata/v1/instance/'
    )
      return text(200, 'attributes/\nservice-accounts/\n');
    return text(404, 'Not Found');
  }

  #form(req: http.IncomingMessage, body: Buffer): Record<string, string> {
    const text = body.toString('utf8');
    if ((req.headers['content-type'] ?? '').includes('application/json')) {
      const j = JSON.parse(text) as Record<string, unknown>;
      // The REST reference's JSON field names are camelCase; accept snake_case too.
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(j))
        out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = String(v);
      return out;
    }
    return Object.fromEntries(new URLSearchParams(text));
  }

  #sts(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): undefined {
    const oauthErr = (error: string, error_description: string) =>
      this.#json(res, 400, { error, error_description });
    if (req.headers.authorization)
      return oauthErr('invalid_request', 'Do not send an Authorization header to STS.');
    let f: Record<string, string>;
    try {
      f = this.#form(req, body);
    } catch {
      return oauthErr('invalid_request', 'Invalid request body.');
    }
    if (f.grant_type !== TOKEN_EXCHANGE) return oauthErr('unsupported_grant_type', 'Unsupported grant type.');
    if (f.requested_token_type !== ACCESS_TOKEN_TYPE)
      return oauthErr('invalid_request', 'Invalid requested_token_type.');
    if (
      f.subject_token_type !== 'urn:ietf:params:oauth:token-type:jwt' &&
      f.subject_token_type !== 'urn:ietf:params:oauth:token-type:id_token'
    )
      return oauthErr('invalid_request', 'Invalid subject_token_type.');
    if (!f.scope?.split(' ').includes('https://www.googleapis.com/auth/cloud-platform'))
      return oauthErr('invalid_scope', 'Scope is required.');
    if (f.audience !== this.providerName)
      return oauthErr(
        'invalid_target',
        'The target service indicated by the "audience" parameters is invalid.',
      );
    const parts = (f.subject_token ?? '').split('.');
    if (parts.length !== 3) return oauthErr('invalid_grant', 'Unable to parse the ID Token.');
    const ok = createVerify('RSA-SHA256')
      .update(`${parts[0]}.${parts[1]}`)
      .verify(this.#issuer.publicKey, parts[2]!, 'base64url');
    if (!ok) return oauthErr('invalid_grant', 'Invalid JWT signature.');
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as {
      sub?: string;
      aud?: string | string[];
      exp?: number;
    };
    const auds = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!auds.some((a) => a !== undefined && this.allowedAudiences.includes(a)))
      return oauthErr('invalid_grant', 'The audience in ID Token does not match the expected audience.');
    if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now())
      return oauthErr('invalid_grant', 'ID Token has expired.');
    const token = this.#issue(this.federatedPrincipal(claims.sub ?? ''));
    this.#json(res, 200, {
      access_token: token,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: this.tokenLifetimeSec,
    });
  }

  #oauth(res: http.ServerResponse, body: Buffer): undefined {
    const f = Object.fromEntries(new URLSearchParams(body.toString('utf8')));
    const err = (error: string, d: string): undefined =>
      this.#json(res, 400, { error, error_description: d });
    let principal: string | undefined;
    if (f.grant_type === 'refresh_token') {
      principal = f.refresh_token ? this.#refreshTokens.get(f.refresh_token) : undefined;
      if (!principal) return err('invalid_grant', 'Token has been expired or revoked.');
    } else if (f.grant_type === 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      const parts = (f.assertion ?? '').split('.');
      if (parts.length !== 3) return err('invalid_grant', 'Invalid JWT.');
      const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { iss?: string };
      const pem = claims.iss ? this.#saKeys.get(claims.iss) : undefined;
      if (
        !pem ||
        !createVerify('RSA-SHA256').update(`${parts[0]}.${parts[1]}`).verify(pem, parts[2]!, 'base64url')
      )
        return err('invalid_grant', 'Invalid JWT Signature.');
      principal = `serviceAccount:${claims.iss}`;
    } else {
      return err('unsupported_grant_type', 'Invalid grant_type.');
    }
    this.#json(res, 200, {
      access_token: this.#issue(principal),
      expires_in: this.tokenLifetimeSec,
      token_type: 'Bearer',
    });
  }

  #generateAccessToken(res: http.ServerResponse, p: string, principal: string): undefined {
    const email = /serviceAccounts\/([^/]+):generateAccessToken$/.exec(p)![1]!;
    if (!this.#impersonators.get(email)?.has(principal)) {
      return this.#status(
        res,
        403,
        'PERMISSION_DENIED',
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
      );
    }
    const token = this.#issue(`serviceAccount:${email}`);
    this.#json(res, 200, {
      accessToken: token,
      expireTime: new Date(Date.now() + this.tokenLifetimeSec * 1000).toISOString(),
    });
  }

  #may(principal: string, secret: string): boolean {
    const g = this.#grants.get(principal);
    return g !== undefined && (g.has('*') || g.has(secret));
  }

  #secretManager(
    _req: http.IncomingMessage,
    res: http.ServerResponse,
    method: string,
    p: string,
    u: URL,
    body: Buffer,
    principal: string,
    badCrc: boolean,
  ): undefined {
    const m =
      /^\/v1\/projects\/([^/]+)\/secrets(?:\/([^/:]+)(?::(addVersion))?(?:\/versions\/([^/:]+)(?::(access|disable|enable|destroy))?)?)?$/.exec(
        p,
      );
    if (!m) return this.#status(res, 404, 'NOT_FOUND', 'Requested entity was not found.');
    const [, project, secretId, addVersion, versionId, verb] = m as unknown as (string | undefined)[];
    const num = this.projectNumber;
    if (project !== this.projectId && project !== num)
      return this.#status(res, 403, 'PERMISSION_DENIED', `Permission denied on resource project ${project}.`);
    const perm = (what: string, resource: string): undefined =>
      this.#status(
        res,
        403,
        'PERMISSION_DENIED',
        `Permission '${what}' denied for resource '${resource}' (or it may not exist).`,
      );
    const admin = principal === 'admin';

    // create: POST projects/{p}/secrets?secretId=
    if (secretId === undefined) {
      if (method !== 'POST') return this.#status(res, 404, 'NOT_FOUND', 'Requested entity was not found.');
      if (!admin) return perm('secretmanager.secrets.create', `projects/${num}`);
      const id = u.searchParams.get('secretId') ?? '';
      if (!/^[A-Za-z0-9_-]{1,255}$/.test(id))
        return this.#status(res, 400, 'INVALID_ARGUMENT', 'Invalid secret id.');
      if (this.#secrets.has(id))
        return this.#status(
          res,
          409,
          'ALREADY_EXISTS',
          `Secret [projects/${num}/secrets/${id}] already exists.`,
        );
      this.createSecret(id);
      return this.#json(res, 200, this.#secretJson(this.#secrets.get(id)!));
    }
    const sname = `projects/${num}/secrets/${secretId}`;
    const secret = this.#secrets.get(secretId);

    if (versionId === undefined) {
      if (!admin) return perm('secretmanager.secrets.get', sname);
      if (!secret) return this.#status(res, 404, 'NOT_FOUND', `Secret [${sname}] not found.`);
      if (addVersion && method === 'POST') {
        const j = JSON.parse(body.toString('utf8') || '{}') as {
          payload?: { data?: string; dataCrc32c?: string | number };
        };
        const data = Buffer.from(j.payload?.data ?? '', 'base64');
        if (j.payload?.dataCrc32c !== undefined && Number(j.payload.dataCrc32c) !== crc32c(data))
          return this.#status(
            res,
            400,
            'INVALID_ARGUMENT',
            'Checksum mismatch: the data does not match data_crc32c.',
          );
        const n = this.addVersion(secretId, data);
        return this.#json(res, 200, this.#versionJson(secretId, secret.versions[n - 1]!));
      }
      if (method === 'DELETE') {
        this.deleteSecret(secretId);
        return this.#json(res, 200, {});
      }
      if (method === 'GET') return this.#json(res, 200, this.#secretJson(secret));
      return this.#status(res, 404, 'NOT_FOUND', 'Requested entity was not found.');
    }

    // a version: access, get, disable/enable/destroy
    const vname = `${sname}/versions/${versionId}`;
    if (verb === 'access') {
      if (!this.#may(principal, secretId)) return perm('secretmanager.versions.access', vname);
    } else if (!admin && !(method === 'GET' && verb === undefined && this.#may(principal, secretId))) {
      return perm(verb ? `secretmanager.versions.${verb}` : 'secretmanager.versions.get', vname);
    }
    if (!secret)
      return this.#status(res, 404, 'NOT_FOUND', `Secret [${sname}] not found or has no versions.`);
    let v: Version | undefined;
    if (versionId === 'latest') v = secret.versions.at(-1);
    else if (/^[1-9]\d*$/.test(versionId)) v = secret.versions[Number(versionId) - 1];
    else return this.#status(res, 400, 'INVALID_ARGUMENT', 'Invalid version id.');
    if (!v) return this.#status(res, 404, 'NOT_FOUND', `Secret Version [${vname}] not found.`);

    if (verb === 'access') {
      if (v.state !== 'ENABLED') {
        return this.#status(
          res,
          400,
          'FAILED_PRECONDITION',
          `Secret Version [${sname}/versions/${v.n}] is in ${v.state} state.`,
        );
      }
      const sum = (crc32c(v.data) ^ (badCrc ? 1 : 0)) >>> 0;
      return this.#json(res, 200, {
        name: `${sname}/versions/${v.n}`,
        payload: { data: v.data.toString('base64'), dataCrc32c: String(sum) },
      });
    }
    if (method === 'POST' && verb) {
      if (verb === 'enable' && v.state === 'DESTROYED')
        return this.#status(
          res,
          400,
          'FAILED_PRECONDITION',
          `Secret Version [${sname}/versions/${v.n}] is in DESTROYED state.`,
        );
      this.setState(
        secretId,
        v.n,
        verb === 'disable' ? 'DISABLED' : verb === 'enable' ? 'ENABLED' : 'DESTROYED',
      );
      return this.#json(res, 200, this.#versionJson(secretId, v));
    }
    if (method === 'GET' && verb === undefined) return this.#json(res, 200, this.#versionJson(secretId, v));
    return this.#status(res, 404, 'NOT_FOUND', 'Requested entity was not found.');
  }

  #secretJson(s: Secret): unknown {
    return {
      name: `projects/${this.projectNumber}/secrets/${s.id}`,
      replication: { automatic: {} },
      createTime: s.createTime,
      etag: `"${s.versions.length}"`,
    };
  }

  #versionJson(id: string, v: Version): unknown {
    return {
      name: `projects/${this.projectNumber}/secrets/${id}/versions/${v.n}`,
      createTime: v.createTime,
      ...(v.destroyTime ? { destroyTime: v.destroyTime } : {}),
      state: v.state,
      replicationStatus: { automatic: {} },
      etag: `"${v.n}-${v.state}"`,
      clientSpecifiedPayloadChecksum: true,
    };
  }
}

/** Start an emulator on a free loopback port. */
export async function startGcpEmulator(opts: GcpEmulatorOptions = {}): Promise<GcpEmulator> {
  const e = new GcpEmulator(opts);
  await e.listen();
  return e;
}
