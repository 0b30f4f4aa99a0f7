import { type ErrorCode, SkError } from '../../errors.js';
import type { SecretRef } from '../../refs.js';
import type { Backends } from '../../spec.js';
import { Limiter } from '../limit.js';
import type { FetchResult, Provider, ProviderContext, ProviderFactory, SecretValue } from '../types.js';
import { fromPem, fromPkcs12, PEM_CONTENT_TYPE, PKCS12_CONTENT_TYPE } from './cert.js';
import { DefaultCredentialSource, type TokenSource, WorkloadIdentitySource } from './credential.js';
import { azureBackend } from './descriptor.js';
import { AzureFailure } from './failure.js';
import { Https, type HttpsOptions, type RetryPolicy } from './http.js';
import { KeyVaultClient } from './keyvault.js';
import { type AzureLocator, parseAzureLocator } from './ref.js';
import { AZURE_CLOUDS, type AzureSettings, azureSettingsSchema } from './settings.js';

/**
 * The `azure:` provider (Azure Key Vault): `azure:<vault-name>/<secret>[/<version>][#key]`, or
 * `azure:https://<vault-host>/secrets/<secret>[/<version>][#key]` for sovereign clouds and other
 * vault hosts. See docs/backends.md ("Azure Key Vault").
 *
 * - Auth: AKS Workload Identity (the projected token in AZURE_FEDERATED_TOKEN_FILE exchanged at Entra
 *   for a Key Vault token), else DefaultAzureCredential (laptop: Azure CLI and friends).
 * - The version is Key Vault's version id (32 hex digits), so a rotation (a new version) is a change
 *   and an unchanged secret is never rewritten.
 * - A plain secret is bytes (`#key` into a JSON value works as for any provider); a certificate-backed
 *   secret (PEM or PKCS#12) is a map of `key`, `cert`, `chain`, `ca`, `pem`.
 * - Throttling (429), 5xx and connection failures: up to {@link AZURE_MAX_ATTEMPTS} attempts, honouring
 *   Retry-After up to {@link AZURE_MAX_RETRY_AFTER_MS}.
 */

export const AZURE_MAX_ATTEMPTS = 4;
export const AZURE_MAX_RETRY_AFTER_MS = 30_000;
export const AZURE_RETRY_BASE_MS = 250;
export const AZURE_MAX_IN_FLIGHT = 8;
export const AZURE_REQUEST_TIMEOUT_MS = 10_000;

export const azureProvider: ProviderFactory = {
  name: 'azure',
  validateRef: azureBackend.validateRef,
  create(backends: Backends): Provider {
    return new AzureProvider(backends.azure ?? {});
  },
};

/** Test seams. */
export interface AzureProviderOptions {
  env?: NodeJS.ProcessEnv;
  /** TLS trust and name resolution for loopback emulators. */
  http?: Partial<Pick<HttpsOptions, 'ca' | 'lookup' | 'timeoutMs'>>;
  retry?: Partial<RetryPolicy>;
}

const GUIDISH = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class AzureProvider implements Provider {
  readonly name = 'azure';
  readonly #http: Https;
  readonly #kv: KeyVaultClient;
  readonly #vaultSuffix: string;
  readonly #limiter = new Limiter(AZURE_MAX_IN_FLIGHT);
  /** The token source in use (tests, `describe` for logs). */
  readonly tokens: TokenSource;

  constructor(input: Readonly<AzureSettings>, opts: AzureProviderOptions = {}) {
    const parsed = azureSettingsSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const at = ['backends', 'azure', ...issue.path.map(String)].join('.');
      throw new SkError('SK_ERR_BACKEND_CONFIG', `${at}: ${issue.message}`, { where: at });
    }
    const s = parsed.data;
    const env = opts.env ?? process.env;
    const cloud = AZURE_CLOUDS[s.cloud ?? 'public'];
    this.#vaultSuffix = (s.vaultSuffix ?? cloud.vaultSuffix).toLowerCase();
    this.#http = new Https({
      timeoutMs: AZURE_REQUEST_TIMEOUT_MS,
      maxBodyBytes: 1 << 20,
      ...opts.http,
    });
    const retry: RetryPolicy = {
      attempts: AZURE_MAX_ATTEMPTS,
      baseMs: AZURE_RETRY_BASE_MS,
      maxRetryAfterMs: AZURE_MAX_RETRY_AFTER_MS,
      ...opts.retry,
    };
    this.tokens = selectTokens(s, env, cloud.authorityHost, this.#http, retry);
    this.#kv = new KeyVaultClient(this.#http, this.tokens, retry);
  }

  /** Requests sent to Key Vault (tests, bench). */
  get stats(): { requests: number; challenges: number } {
    return this.#kv.stats;
  }

  async fetch(ref: SecretRef, ctx: ProviderContext): Promise<FetchResult> {
    const loc = parseAzureLocator(ref, ref.raw);
    const vault = this.vaultUrl(loc);
    const call = `azure GetSecret ${vault.host}/${loc.secret}${loc.version ? `/${loc.version}` : ''}`;
    try {
      const bundle = await this.#limiter.run(() =>
        this.#kv.getSecret(vault, loc.secret, loc.version, ctx.signal),
      );
      return { value: await toValue(bundle.value, bundle.contentType), version: bundle.version };
    } catch (e) {
      throw toSk(e, ref, call);
    }
  }

  /** The vault's base URL: `https://<vault>.<suffix>` or the URL form's host. */
  vaultUrl(loc: AzureLocator): URL {
    return new URL(`https://${loc.host ?? `${loc.vault}.${this.#vaultSuffix}`}/`);
  }

  async close(): Promise<void> {
    this.#http.close();
  }
}

function selectTokens(
  s: AzureSettings,
  env: NodeJS.ProcessEnv,
  cloudAuthority: string,
  http: Https,
  retry: RetryPolicy,
): TokenSource {
  const pick = (v: string | undefined, setting: string, name: string): [string | undefined, string] =>
    v
      ? [v, `backends.azure.${setting}`]
      : env[name]
        ? [env[name], name]
        : [undefined, `backends.azure.${setting} (or ${name})`];
  const [tokenFile, tokenFileFrom] = pick(s.tokenFile, 'tokenFile', 'AZURE_FEDERATED_TOKEN_FILE');
  if (tokenFile === undefined) return new DefaultCredentialSource();
  const [clientId, clientFrom] = pick(s.clientId, 'clientId', 'AZURE_CLIENT_ID');
  const [tenantId, tenantFrom] = pick(s.tenantId, 'tenantId', 'AZURE_TENANT_ID');
  const [authorityHost, authorityFrom] = pick(s.authorityHost, 'authorityHost', 'AZURE_AUTHORITY_HOST');
  const missing = (what: string, from: string): never => {
    throw new SkError(
      'SK_ERR_BACKEND_CONFIG',
      `${from}: not set; workload identity (token file from ${tokenFileFrom}) needs the ${what} (pod annotation sidekey.io/azure-${what === 'client id' ? 'client' : 'tenant'}-id or the chart's cluster default)`,
      { where: from },
    );
  };
  if (clientId === undefined) missing('client id', clientFrom);
  if (tenantId === undefined) missing('tenant id', tenantFrom);
  if (!GUIDISH.test(clientId!))
    throw new SkError('SK_ERR_BACKEND_CONFIG', `${clientFrom}: not a client id (a GUID)`, {
      where: clientFrom,
    });
  if (!GUIDISH.test(tenantId!))
    throw new SkError('SK_ERR_BACKEND_CONFIG', `${tenantFrom}: not a tenant id (a GUID or a domain)`, {
      where: tenantFrom,
    });
  const authority = authorityHost ?? cloudAuthority;
  let u: URL | undefined;
  try {
    u = new URL(authority);
  } catch {
    u = undefined;
  }
  if (u?.protocol !== 'https:') {
    const where = authorityHost === undefined ? 'backends.azure.cloud' : authorityFrom;
    throw new SkError('SK_ERR_BACKEND_CONFIG', `${where}: the Entra authority host must be an https:// URL`, {
      where,
    });
  }
  return new WorkloadIdentitySource(
    {
      tenantId: tenantId!,
      clientId: clientId!,
      authorityHost: authority,
      tokenFile,
      from: { tenantId: tenantFrom, clientId: clientFrom, tokenFile: tokenFileFrom },
    },
    http,
    retry,
  );
}

async function toValue(value: string, contentType: string | undefined): Promise<SecretValue> {
  const ct = contentType?.split(';')[0]?.trim().toLowerCase();
  if (ct === PEM_CONTENT_TYPE) return { kind: 'map', data: fromPem(value) };
  if (ct === PKCS12_CONTENT_TYPE) return { kind: 'map', data: await fromPkcs12(value) };
  return { kind: 'bytes', bytes: Buffer.from(value, 'utf8') };
}

/** Any failure as an SkError: `<ref>: <call>: <why>`; the Entra exchange names itself as the call. */
function toSk(e: unknown, ref: SecretRef, call: string): SkError {
  if (e instanceof SkError) return e;
  let code: ErrorCode = 'SK_ERR_INTERNAL';
  let why = 'unexpected failure';
  let at = call;
  if (e instanceof AzureFailure) {
    code = e.code;
    why = e.why;
    if (e.call !== undefined) at = `azure ${e.call} (for ${call.replace(/^azure /, '')})`;
  }
  return new SkError(code, `${ref.raw}: ${at}: ${why}`, { where: ref.raw });
}
