import { stringify as stringifyProperties } from 'dot-properties';
import YAML from 'yaml';
import { SkError } from '../errors.js';
import { isRecord } from '../is-record.js';
import type { SecretValue } from '../providers/types.js';
import type { Format, ResolvedSecret } from '../spec.js';
import { asMap, leafText, toPlain } from './value.js';

/** Environment variable names accepted by the `env` format (POSIX portable names). */
export const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Render a value in one of the built-in formats.
 *
 * - `raw`: bytes as they are; a map as its JSON text.
 * - `json`: a map (or a bytes value holding a JSON object) as indented JSON; any other bytes as a JSON
 *   string.
 * - `env`: a map as dotenv `KEY="value"` lines (see {@link dotenvQuote}); other values are refused.
 * - `yaml`: a map as a YAML mapping; other bytes as a YAML string.
 * - `properties`: a map as Java `.properties` (nested maps flattened with dots); other values refused.
 */
export function renderFormat(secret: Pick<ResolvedSecret, 'name' | 'format'>, value: SecretValue): Buffer {
  const format: Format = secret.format;
  switch (format) {
    case 'raw':
      if (value.kind === 'bytes') return value.bytes;
      return Buffer.from(jsonText(toPlain(value.data, secret.name)), 'utf8');
    case 'json': {
      const map = asMap(value);
      if (map) return Buffer.from(jsonText(toPlain(map, secret.name)), 'utf8');
      return Buffer.from(`${JSON.stringify(bytesText(secret.name, value))}\n`, 'utf8');
    }
    case 'env':
      return Buffer.from(dotenvLines(secret.name, requireMap(secret.name, 'env', value)), 'utf8');
    case 'yaml': {
      const map = asMap(value);
      const data = map ? toPlain(map, secret.name) : bytesText(secret.name, value);
      return Buffer.from(YAML.stringify(data, { lineWidth: 0 }), 'utf8');
    }
    case 'properties': {
      const map = requireMap(secret.name, 'properties', value);
      return Buffer.from(propertiesText(map), 'utf8');
    }
    default: {
      const never: never = format;
      throw new SkError(
        'SK_ERR_FORMAT_INVALID',
        `secret "${secret.name}": unknown format "${String(never)}"`,
        {
          where: secret.name,
        },
      );
    }
  }
}

function jsonText(data: unknown): string {
  return `${JSON.stringify(data, null, 2)}\n`;
}

function bytesText(name: string, value: SecretValue): string {
  return toPlain(value.kind === 'bytes' ? value.bytes : Buffer.alloc(0), name) as string;
}

function requireMap(name: string, format: string, value: SecretValue): Record<string, unknown> {
  const map = asMap(value);
  if (!map) {
    throw new SkError(
      'SK_ERR_RENDER',
      `secret "${name}": format ${format} needs a map of keys (a YAML/JSON/dotenv source or a JSON object), but the value is a single string; drop the #key or use format raw`,
      { where: name },
    );
  }
  return toPlain(map, name) as Record<string, unknown>;
}

/** dotenv lines, one per key, in the map's order. Nested values are written as their JSON text. */
export function dotenvLines(name: string, data: Record<string, unknown>): string {
  let out = '';
  for (const [k, v] of Object.entries(data)) {
    if (!ENV_KEY_RE.test(k)) {
      throw new SkError(
        'SK_ERR_RENDER',
        `secret "${name}": key "${k}" is not an environment variable name (letters, digits, _; not starting with a digit)`,
        { where: name },
      );
    }
    const quoted = dotenvQuote(leafText(v));
    if (quoted === undefined) {
      throw new SkError(
        'SK_ERR_RENDER',
        `secret "${name}": the value of key "${k}" mixes ', " or \\ and \` with line breaks and cannot be written as dotenv; use format json or a template`,
        { where: name },
      );
    }
    out += `${k}=${quoted}\n`;
  }
  return out;
}

/**
 * Quote one value for a dotenv file so that the `dotenv` parser (and python-dotenv, docker compose
 * and POSIX shells for the common cases) read back exactly the same string. dotenv has no general
 * escape character, so the quoting is chosen per value:
 *
 * 1. only "plain" characters: `"value"`;
 * 2. no `'` and no CR: `'value'` — single quotes are literal everywhere (`$`, `\`, `"`, newlines kept);
 * 3. no `"` and no `\`: `"value"` with line breaks as `\n`/`\r` (dotenv expands exactly those two);
 * 4. no backtick and no CR: `` `value` `` (dotenv's literal backtick quotes);
 * 5. otherwise undefined: the value cannot be represented (dotenv turns a literal CR into a newline).
 */
export function dotenvQuote(v: string): string | undefined {
  if (/^[^"'`\\$\r\n]*$/.test(v)) return `"${v}"`;
  if (!v.includes("'") && !v.includes('\r')) return `'${v}'`;
  if (!v.includes('"') && !v.includes('\\')) return `"${v.replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`;
  if (!v.includes('`') && !v.includes('\r')) return `\`${v}\``;
  return undefined;
}

function propertiesText(data: Record<string, unknown>): string {
  const tree = toTree(data);
  return `${stringifyProperties(tree as Parameters<typeof stringifyProperties>[0], { keySep: '=', lineWidth: null, latin1: true })}\n`;
}

type Tree = { [k: string]: string | Tree };

function toTree(data: Record<string, unknown>): Tree {
  const out: Tree = {};
  for (const [k, v] of Object.entries(data)) out[k] = isRecord(v) ? toTree(v) : leafText(v);
  return out;
}
