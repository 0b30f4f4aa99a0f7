import { readFileSync } from 'node:fs';
import path from 'node:path';
import { SkError } from './errors.js';
import type { ProviderRegistry } from './providers/registry.js';
import { compileTemplate } from './render/template.js';
import {
  loadSpec,
  type ResolvedSecret,
  type ResolvedSpec,
  type ResolveOptions,
  resolveSpec,
} from './spec.js';

/** Options shared by {@link loadSpecFile} and {@link loadSpecJson}. */
export interface LoadOptions {
  /** Providers that exist; refs are checked against it (provider known, locator/options valid). */
  readonly registry: ProviderRegistry;
  /** Prefix for error locations; default: the file path, or `SIDEKEY_SPEC`. */
  readonly source?: string;
  /** Directory relative `file:` refs and output dirs resolve against; default: the file's dir / cwd. */
  readonly baseDir?: string;
}

/**
 * Read and resolve a spec file (`sidekey.yaml`, YAML or JSON). Relative paths in it resolve against
 * the file's directory. Every ref is validated by its provider and every template is compiled, so a
 * spec that loads is one the engine can run. Synchronous on purpose: it runs once at startup.
 *
 * Throws SkError: SK_ERR_SPEC_PARSE (unreadable file, naming the path; bad YAML), and whatever
 * resolution finds (SK_ERR_SPEC_INVALID, SK_ERR_PROVIDER_UNKNOWN, SK_ERR_TEMPLATE_SYNTAX, ...).
 */
export function loadSpecFile(file: string, opts: LoadOptions): ResolvedSpec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`;
    throw new SkError('SK_ERR_SPEC_PARSE', `spec file ${file} ${why}`, { where: file, cause: e });
  }
  return loadSpec(text, resolveOptions(opts, opts.source ?? file, path.dirname(path.resolve(file))));
}

/**
 * Resolve a spec given as JSON text, e.g. the `SIDEKEY_SPEC` environment variable the webhook sets.
 * Relative paths resolve against `baseDir` (default: the current directory).
 */
export function loadSpecJson(json: string, opts: LoadOptions): ResolvedSpec {
  const source = opts.source ?? 'SIDEKEY_SPEC';
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (e) {
    // V8's message quotes the input; say only where it broke.
    const pos = /position (\d+)/.exec((e as Error).message)?.[1];
    throw new SkError(
      'SK_ERR_SPEC_PARSE',
      `${source}: not valid JSON${pos ? ` (at character ${pos})` : ''}`,
      {
        where: source,
      },
    );
  }
  return resolveSpec(doc, resolveOptions(opts, source, process.cwd()));
}

/** The per-secret check used at load time: the provider accepts the ref, the template compiles. */
export function checkSecretWith(registry: ProviderRegistry): (secret: ResolvedSecret, where: string) => void {
  return (secret, where) => {
    registry.validateRef(secret.ref, `${where}.ref`);
    if (secret.template !== undefined) compileTemplate(secret.template, `${where}.template`);
  };
}

function resolveOptions(opts: LoadOptions, source: string, defaultBase: string): ResolveOptions {
  return {
    source,
    baseDir: opts.baseDir ?? defaultBase,
    knownProviders: opts.registry.names(),
    checkSecret: checkSecretWith(opts.registry),
  };
}
