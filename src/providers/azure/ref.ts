import { refSyntaxError, type SecretRef } from '../../refs.js';

/**
 * `azure:` ref syntax (no I/O): `azure:<vault-name>/<secret>[/<version>][#key]`, or a full secret URL
 * for sovereign clouds and other vault hosts: `azure:https://<vault-host>/secrets/<secret>[/<version>]`.
 */
export interface AzureLocator {
  /** The vault name (`myvault`) for the short form, undefined for the URL form. */
  readonly vault: string | undefined;
  /** The vault host for the URL form (`myvault.vault.azure.cn`, may carry a port). */
  readonly host: string | undefined;
  readonly secret: string;
  /** A pinned version (32 hex digits), or undefined for the current version. */
  readonly version: string | undefined;
}

/** Key Vault names: 3–24 characters, letters, digits and single hyphens, starting with a letter. */
const VAULT_RE = /^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/;
/** Secret names: 1–127 letters, digits and hyphens. */
const SECRET_RE = /^[a-zA-Z0-9-]{1,127}$/;
/** Version ids: 32 hexadecimal digits. */
const VERSION_RE = /^[0-9a-fA-F]{32}$/;
const HOST_RE =
  /^(?=.{1,253}(?::\d{1,5})?$)[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:\d{1,5})?$/;

/** Parse and check an `azure:` ref's locator; throws SK_ERR_REF_SYNTAX naming `where` (never the ref). */
export function parseAzureLocator(ref: SecretRef, where: string): AzureLocator {
  const fail = (why: string): never => {
    throw refSyntaxError(where, why);
  };
  const opts = Object.keys(ref.options);
  if (opts.length > 0) {
    fail('has an option (azure: takes none; pin a version as azure:<vault>/<secret>/<version>)');
  }
  const loc = ref.locator;
  let vault: string | undefined;
  let host: string | undefined;
  let parts: string[];
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(loc)) {
    if (!loc.toLowerCase().startsWith('https://'))
      fail('is a vault URL that is not https:// (Key Vault is only reached over TLS)');
    const rest = loc.slice('https://'.length);
    const slash = rest.indexOf('/');
    host = slash < 0 ? rest : rest.slice(0, slash);
    if (!HOST_RE.test(host)) fail('has a vault URL whose host is not a DNS name');
    const path = (slash < 0 ? '' : rest.slice(slash + 1)).replace(/\/$/, '');
    const segs = path.split('/');
    if (segs[0] !== 'secrets' || segs.length < 2 || segs.length > 3)
      fail('is a vault URL that is not https://<vault-host>/secrets/<secret>[/<version>]');
    parts = segs.slice(1);
    host = host.toLowerCase();
  } else {
    parts = loc.split('/');
    if (parts.length < 2 || parts.length > 3)
      fail('is not <vault-name>/<secret>[/<version>] or https://<vault-host>/secrets/<secret>');
    vault = parts.shift()!;
    if (!VAULT_RE.test(vault))
      fail('has a bad vault name (3-24 letters, digits and single hyphens, starting with a letter)');
    vault = vault.toLowerCase();
  }
  const [secret, version] = parts as [string, string | undefined];
  if (!SECRET_RE.test(secret)) fail('has a bad secret name (1-127 letters, digits and hyphens)');
  if (version !== undefined && !VERSION_RE.test(version))
    fail('has a bad version (a Key Vault version id is 32 hexadecimal digits)');
  return { vault, host, secret, version: version?.toLowerCase() };
}
