import { randomBytes } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo, LookupFunction } from 'node:net';
import { createCa } from '../../e2e/harness/pki.ts';

/**
 * An EMULATOR of Azure Key Vault's secrets REST API and of the Entra ID (v2) token endpoint, written
 * from the published API references (Key Vault "Get Secret", its challenge-based authentication, its
 * error JSON; the OAuth 2.0 client-credentials grant with a client assertion, as AKS Workload Identity
 * uses it). No Azure server can be installed here, so this stands in for one, on loopback, over HTTPS
 * with a test CA. It is checked against the real Azure SDK (@azure/keyvault-secrets, @azure/identity)
 * in test/integration/providers/azure-emulator-sdk.test.ts, so it is not shaped after sidekey's client.
 *
 * Key Vault (any `Host` whose first label is the vault name, or the loopback address):
 * - `GET /secrets/{name}[/{version}]?api-version=…` → 200 SecretBundle `{value, id, contentType?,
 *   attributes}`; 404 `SecretNotFound`; 403 `Forbidden`/`SecretDisabled` for a disabled version;
 *   400 `BadParameter` without api-version.
 * - Without a bearer (or with one it did not issue, or an expired one): 401 with
 *   `WWW-Authenticate: Bearer authorization="{authority}/{tenant}", resource="https://{vault domain}"`.
 *
 * Entra: `POST /{tenant}/oauth2/v2.0/token` (form) with `grant_type=client_credentials`,
 * `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, the client
 * assertion (the projected token), client id and scope → `{token_type, expires_in, access_token}`, or
 * the OAuth error JSON (`invalid_client` AADSTS70021 for an assertion no federated credential matches,
 * `unauthorized_client` AADSTS700016 for an unknown client, `invalid_request` AADSTS90002 for an
 * unknown tenant, `invalid_scope` AADSTS70011). Also the tenant's OpenID metadata, which MSAL reads.
 *
 * Test controls: {@link AzureEmulator.setSecret} (a new version: rotation), `disable`, `remove`,
 * `fault` (the next N Key Vault or token answers replaced: 403, 503, 429 + Retry-After, garbage),
 * `trustAssertion`, and records of every request (no values, no tokens).
 */

export interface EmulatedVersion {
  readonly version: string;
  readonly value: string;
  readonly contentType: string | undefined;
  enabled: boolean;
  readonly created: number;
}

export interface Fault {
  readonly status: number;
  /** Body as sent (a string is sent as-is: garbage); default the Key Vault error JSON for the status. */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

export interface EmulatorRequest {
  readonly at: number;
  readonly method: string;
  readonly path: string;
  readonly host: string;
  /** Key Vault: none | issued (a bearer this emulator issued and still valid) | rejected. Entra: the grant. */
  readonly auth: 'none' | 'issued' | 'rejected' | 'token';
  readonly status: number;
}

export interface AzureEmulatorOptions {
  readonly tenantId?: string;
  readonly clientId?: string;
  readonly vaultName?: string;
  /** The vault domain: vault hosts are `<vault>.<suffix>`, the challenge resource `https://<suffix>`. */
  readonly suffix?: string;
  readonly tokenLifetimeSec?: number;
}

export interface AzureEmulator {
  readonly port: number;
  /** PEM of the CA that signed the emulator's certificate. */
  readonly ca: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly vaultName: string;
  readonly suffix: string;
  /** `https://127.0.0.1:<port>/`: AZURE_AUTHORITY_HOST. */
  readonly authorityHost: string;
  /** `https://<vault>.<suffix>:<port>`: reachable with {@link lookup}. */
  readonly vaultUrl: string;
  /** `https://127.0.0.1:<port>`: the vault by address (URL-form refs, any process). */
  readonly ipVaultUrl: string;
  /** Resolves `<vault>.<suffix>` to loopback and any other name under the suffix to ENOTFOUND. */
  readonly lookup: LookupFunction;
  readonly requests: EmulatorRequest[];
  /** Every client assertion presented to the token endpoint (tests compare with the token file). */
  readonly assertions: string[];
  /** Access tokens issued, in order. */
  readonly issued: string[];
  setSecret(name: string, value: string, opts?: { contentType?: string; enabled?: boolean }): string;
  versions(name: string): readonly EmulatedVersion[];
  disable(name: string, version?: string): void;
  remove(name: string): void;
  /** The next `times` Key Vault secret reads (after authentication) answer with `fault`. */
  fault(fault: Fault, times?: number): void;
  /** The next `times` token requests answer with `fault`. */
  tokenFault(fault: Fault, times?: number): void;
  /** Drop the faults not yet used. */
  clearFaults(): void;
  /** Accept this projected token as a client assertion (the federated identity credential). */
  trustAssertion(assertion: string): void;
  /** An access token as Entra would have issued it to another client (a developer's `az login`). */
  issueToken(): string;
  /** Forget issued tokens (as if revoked): the next Key Vault read with one gets a 401. */
  revokeTokens(): void;
  /** Challenge with this resource instead of the vault's domain (a misdirected or hostile endpoint). */
  challengeResource(resource: string | undefined): void;
  stop(): Promise<void>;
}

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

const kvError = (code: string, message: string, inner?: string) => ({
  error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) },
});

function defaultFaultBody(status: number): unknown {
  switch (status) {
    case 403:
      return kvError(
        'Forbidden',
        "Caller is not authorized to perform action on resource. Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'",
        'ForbiddenByRbac',
      );
    case 429:
      return kvError('Throttled', 'Request was not processed because too many requests were received.');
    default:
      return kvError('ServiceUnavailable', 'The service is temporarily unavailable.');
  }
}

export async function startAzureEmulator(opts: AzureEmulatorOptions = {}): Promise<AzureEmulator> {
  const tenantId = opts.tenantId ?? '72f988bf-86f1-41af-91ab-2d7cd011db47';
  const clientId = opts.clientId ?? '00000000-1111-2222-3333-444444444444';
  const vaultName = opts.vaultName ?? 'sk-emulated';
  const suffix = opts.suffix ?? 'vault.emulator.test';
  const lifetime = opts.tokenLifetimeSec ?? 3600;

  const ca = await createCa('CN=sidekey-azure-emulator-ca');
  const leaf = await ca.sign({
    subject: 'CN=azure-emulator',
    dns: [`*.${suffix}`, 'localhost'],
    ips: ['127.0.0.1'],
    usage: 'server',
  });

  const secrets = new Map<string, EmulatedVersion[]>();
  const tokens = new Map<string, number>(); // access token → expiry (epoch ms)
  const trusted = new Set<string>();
  const faults: Array<{ fault: Fault; times: number }> = [];
  const tokenFaults: Array<{ fault: Fault; times: number }> = [];
  const requests: EmulatorRequest[] = [];
  const assertions: string[] = [];
  const issued: string[] = [];
  let port = 0;
  let resourceOverride: string | undefined;

  const takeFault = (q: Array<{ fault: Fault; times: number }>): Fault | undefined => {
    const f = q[0];
    if (!f) return undefined;
    if (--f.times <= 0) q.shift();
    return f.fault;
  };

  const server = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'https://emulator');
      const host = String(req.headers.host ?? '');
      const hostname = host.replace(/:\d+$/, '');
      let auth: EmulatorRequest['auth'] = 'none';
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        requests.push({ at: Date.now(), method: req.method ?? '', path: url.pathname, host, auth, status });
        const text = typeof body === 'string' ? body : body === undefined ? '' : JSON.stringify(body);
        res.writeHead(status, {
          'content-type': typeof body === 'string' ? 'text/html' : 'application/json; charset=utf-8',
          'x-ms-request-id': `emulated-${randomBytes(8).toString('hex')}`,
          ...headers,
        });
        res.end(text);
      };
      const sendFault = (f: Fault) => send(f.status, f.body ?? defaultFaultBody(f.status), f.headers);

      // ---- Entra ID ----
      const tokenPath = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname);
      if (tokenPath && req.method === 'POST') {
        auth = 'token';
        const f = takeFault(tokenFaults);
        if (f) return sendFault(f);
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const oauthError = (status: number, error: string, aadsts: number, text: string) =>
          send(status, {
            error,
            error_description: `AADSTS${aadsts}: ${text} Trace ID: ${randomBytes(8).toString('hex')} Timestamp: ${new Date().toISOString()}`,
            error_codes: [aadsts],
            timestamp: new Date().toISOString(),
            trace_id: randomBytes(16).toString('hex'),
            correlation_id: randomBytes(16).toString('hex'),
          });
        if (decodeURIComponent(tokenPath[1]!) !== tenantId)
          return oauthError(400, 'invalid_request', 90002, `Tenant '${tokenPath[1]}' not found.`);
        if (form.get('grant_type') !== 'client_credentials')
          return oauthError(
            400,
            'unsupported_grant_type',
            70003,
            'The app requested an unsupported grant type.',
          );
        if (form.get('client_id') !== clientId)
          return oauthError(
            400,
            'unauthorized_client',
            700016,
            `Application with identifier '${form.get('client_id')}' was not found in the directory.`,
          );
        if (form.get('client_assertion_type') !== ASSERTION_TYPE)
          return oauthError(
            400,
            'invalid_request',
            900144,
            "The request body must contain 'client_assertion'.",
          );
        const assertion = form.get('client_assertion') ?? '';
        assertions.push(assertion);
        if (!trusted.has(assertion))
          return oauthError(
            400,
            'invalid_client',
            70021,
            'No matching federated identity record found for presented assertion.',
          );
        const scope = form.get('scope') ?? '';
        if (scope !== `https://${suffix}/.default` && scope !== 'https://127.0.0.1/.default')
          return oauthError(
            400,
            'invalid_scope',
            70011,
            `The provided value for scope ${scope} is not valid.`,
          );
        const token = `emu-at-${randomBytes(24).toString('hex')}`;
        tokens.set(token, Date.now() + lifetime * 1000);
        issued.push(token);
        return send(200, {
          token_type: 'Bearer',
          expires_in: lifetime,
          ext_expires_in: lifetime,
          access_token: token,
        });
      }
      // OpenID metadata (MSAL reads it before its first token request).
      const meta = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(url.pathname);
      if (meta && req.method === 'GET') {
        const base = `https://127.0.0.1:${port}/${meta[1]}`;
        return send(200, {
          token_endpoint: `${base}/oauth2/v2.0/token`,
          authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
          issuer: `${base}/v2.0`,
          jwks_uri: `${base}/discovery/v2.0/keys`,
          end_session_endpoint: `${base}/oauth2/v2.0/logout`,
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
          token_endpoint_auth_methods_supported: [
            'client_secret_post',
            'private_key_jwt',
            'client_secret_basic',
          ],
        });
      }

      // ---- Key Vault ----
      const secretPath = /^\/secrets\/([^/]+)(?:\/([^/]*))?\/?$/.exec(url.pathname);
      const isIp = /^\d+\.\d+\.\d+\.\d+$/.test(hostname);
      const resource =
        resourceOverride ??
        (isIp ? `https://${hostname}` : `https://${hostname.split('.').slice(1).join('.')}`);
      const challenge = {
        'www-authenticate': `Bearer authorization="https://127.0.0.1:${port}/${tenantId}", resource="${resource}"`,
      };
      const bearer = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
      if (bearer === undefined)
        return send(
          401,
          kvError('Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.'),
          challenge,
        );
      const exp = tokens.get(bearer);
      if (exp === undefined || exp < Date.now()) {
        auth = 'rejected';
        return send(
          401,
          kvError(
            'Unauthorized',
            '[TokenExpired] Error validating token: the token was not issued for this vault.',
          ),
          challenge,
        );
      }
      auth = 'issued';
      if (!isIp && hostname.split('.')[0] !== vaultName)
        return send(404, kvError('VaultNotFound', 'The vault was not found.'));
      if (!url.searchParams.get('api-version'))
        return send(400, kvError('BadParameter', 'The api-version query parameter is missing.'));
      if (!secretPath || req.method !== 'GET')
        return send(405, kvError('MethodNotAllowed', 'Not supported here.'));
      const f = takeFault(faults);
      if (f) return sendFault(f);
      const name = decodeURIComponent(secretPath[1]!);
      const wanted = secretPath[2] || undefined;
      const all = secrets.get(name.toLowerCase()) ?? [];
      const v = wanted === undefined ? all.at(-1) : all.find((x) => x.version === wanted.toLowerCase());
      if (!v) {
        return send(
          404,
          kvError(
            'SecretNotFound',
            `A secret with (name/id) ${name}${wanted ? `/${wanted}` : ''} was not found in this key vault.`,
          ),
        );
      }
      if (!v.enabled)
        return send(
          403,
          kvError('Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled'),
        );
      const t = Math.floor(v.created / 1000);
      return send(200, {
        value: v.value,
        ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
        id: `https://${hostname}/secrets/${name}/${v.version}`,
        attributes: {
          enabled: true,
          created: t,
          updated: t,
          recoveryLevel: 'Recoverable+Purgeable',
          recoverableDays: 90,
        },
        tags: {},
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;

  const lookup = ((hostname: string, options: unknown, cb: unknown) => {
    const callback = (typeof options === 'function' ? options : cb) as (...a: unknown[]) => void;
    const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all;
    const known = hostname.toLowerCase() === `${vaultName}.${suffix}` || hostname === 'localhost';
    if (!known) {
      const e = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
        code: 'ENOTFOUND',
        hostname,
      });
      return callback(e);
    }
    if (all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
  }) as LookupFunction;

  return {
    port,
    ca: ca.certPem,
    tenantId,
    clientId,
    vaultName,
    suffix,
    authorityHost: `https://127.0.0.1:${port}/`,
    vaultUrl: `https://${vaultName}.${suffix}:${port}`,
    ipVaultUrl: `https://127.0.0.1:${port}`,
    lookup,
    requests,
    assertions,
    issued,
    setSecret(name, value, o = {}) {
      const version = randomBytes(16).toString('hex');
      const list = secrets.get(name.toLowerCase()) ?? [];
      list.push({
        version,
        value,
        contentType: o.contentType,
        enabled: o.enabled ?? true,
        created: Date.now(),
      });
      secrets.set(name.toLowerCase(), list);
      return version;
    },
    versions: (name) => secrets.get(name.toLowerCase()) ?? [],
    disable(name, version) {
      const list = secrets.get(name.toLowerCase()) ?? [];
      const v = version === undefined ? list.at(-1) : list.find((x) => x.version === version);
      if (!v) throw new Error(`emulator: no secret ${name}${version ? `/${version}` : ''}`);
      v.enabled = false;
    },
    remove(name) {
      secrets.delete(name.toLowerCase());
    },
    fault(fault, times = 1) {
      faults.push({ fault, times });
    },
    tokenFault(fault, times = 1) {
      tokenFaults.push({ fault, times });
    },
    clearFaults() {
      faults.length = 0;
      tokenFaults.length = 0;
    },
    trustAssertion(a) {
      trusted.add(a);
    },
    issueToken() {
      const token = `emu-at-${randomBytes(24).toString('hex')}`;
      tokens.set(token, Date.now() + lifetime * 1000);
      issued.push(token);
      return token;
    },
    revokeTokens() {
      tokens.clear();
    },
    challengeResource(r) {
      resourceOverride = r;
    },
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
