import {
  type FS,
  Liquid,
  LiquidError,
  Tag,
  type TagToken,
  type Template,
  type TopLevelToken,
} from 'liquidjs';
import YAML from 'yaml';
import { SkError } from '../errors.js';
import type { SecretValue } from '../providers/types.js';
import type { ResolvedSecret } from '../spec.js';
import { dotenvQuote } from './formats.js';
import { asMap, leafText, toPlain } from './value.js';

/** Templates longer than this are refused at compile time (annotations are capped at 256 KiB anyway). */
export const TEMPLATE_MAX_CHARS = 64 * 1024;
/** A rendered file larger than this is refused: it lands in a small tmpfs. */
export const OUTPUT_MAX_BYTES = 1024 * 1024;
/** Wall-clock budget of one render (LiquidJS `renderLimit`). */
export const RENDER_LIMIT_MS = 1000;
/** LiquidJS `memoryLimit`: roughly characters/elements allocated by filters and loops in one render. */
export const MEMORY_LIMIT = 16 * 1024 * 1024;
/** How many compiled templates are kept (a pod rarely has more than a handful). */
const CACHE_MAX = 256;

/**
 * An error thrown by our own filters. Its message is written to be safe to show: it never contains
 * the filter's input. Any other error from inside a render is reported only by its type.
 */
class FilterError extends Error {
  override readonly name = 'FilterError';
}

/** File tags are replaced by this tag, which fails at parse time so the spec is refused up front. */
class DisabledTag extends Tag {
  constructor(token: TagToken, remain: TopLevelToken[], liquid: Liquid) {
    super(token, remain, liquid);
    throw new Error(`the "${token.name}" tag is disabled: templates cannot read files`);
  }
  *render(): Generator<unknown, void, unknown> {}
}

/** A file system that holds nothing; second line of defence behind the disabled tags. */
const noFs: FS = {
  exists: async () => false,
  existsSync: () => false,
  readFile: async () => {
    throw new Error('templates cannot read files');
  },
  readFileSync: () => {
    throw new Error('templates cannot read files');
  },
  resolve: (_dir, file) => file,
  contains: async () => false,
  containsSync: () => false,
};

function createEngine(): Liquid {
  const engine = new Liquid({
    // No prototype walking: `data.constructor`, `value.__proto__` resolve to nothing.
    ownPropertyOnly: true,
    // A misspelled filter or key is an error, not a silently empty secret file.
    strictFilters: true,
    strictVariables: true,
    // ...but `{% if data.optional %}` and `| default:` still work for optional keys.
    lenientIf: true,
    fs: noFs,
    root: [],
    partials: [],
    layouts: [],
    relativeReference: false,
    dynamicPartials: false,
    cache: false,
    parseLimit: TEMPLATE_MAX_CHARS,
    renderLimit: RENDER_LIMIT_MS,
    memoryLimit: MEMORY_LIMIT,
    // A fixed locale: without it LiquidJS asks Intl.DateTimeFormat at construction, which loads ICU
    // data (~6 MiB of the agent's RSS) and makes date output depend on the host.
    locale: 'en-US',
  });
  for (const name of ['include', 'render', 'layout', 'block']) engine.registerTag(name, DisabledTag);

  engine.registerFilter('yaml', (v: unknown) => YAML.stringify(v, { lineWidth: 0 }));
  engine.registerFilter('dotenv_quote', (v: unknown) => {
    const q = dotenvQuote(leafText(v));
    if (q === undefined) throw new FilterError('dotenv_quote: the value cannot be written as a dotenv value');
    return q;
  });
  engine.registerFilter('base64url_encode', (v: unknown) =>
    Buffer.from(leafText(v), 'utf8').toString('base64url'),
  );
  // RFC 3986: everything but the unreserved characters, a space as %20. Unlike Liquid's url_encode
  // (form encoding: a space becomes `+`, which a URL's user info or path does not decode back), the
  // result decodes to the same text wherever it goes in a URL.
  engine.registerFilter('percent_encode', (v: unknown) =>
    encodeURIComponent(leafText(v)).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    ),
  );
  engine.registerFilter('json_parse', (v: unknown) => {
    try {
      return JSON.parse(leafText(v));
    } catch {
      throw new FilterError('json_parse: the input is not valid JSON');
    }
  });
  return engine;
}

let engine: Liquid | undefined;
const cache = new Map<string, Template[]>();

function getEngine(): Liquid {
  engine ??= createEngine();
  return engine;
}

/**
 * Parse a template (syntax only) and cache the result. Throws SK_ERR_TEMPLATE_SYNTAX naming `where`
 * (e.g. `sidekey.yaml:secrets.db.template` or the annotation) and the template line.
 */
export function compileTemplate(source: string, where: string): void {
  compile(source, where);
}

function compile(source: string, where: string): Template[] {
  const hit = cache.get(source);
  if (hit) {
    // refresh recency so the cache behaves as an LRU
    cache.delete(source);
    cache.set(source, hit);
    return hit;
  }
  if (source.length > TEMPLATE_MAX_CHARS) {
    throw new SkError(
      'SK_ERR_TEMPLATE_SYNTAX',
      `${where}: the template is ${source.length} characters long; the limit is ${TEMPLATE_MAX_CHARS}`,
      { where },
    );
  }
  let tpls: Template[];
  try {
    tpls = getEngine().parse(source);
  } catch (e) {
    const line = errorLine(e);
    throw new SkError(
      'SK_ERR_TEMPLATE_SYNTAX',
      `${where}: template${line ? ` line ${line}` : ''}: ${clip(innerMessage(e))}`,
      { where },
    );
  }
  cache.set(source, tpls);
  if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value as string);
  return tpls;
}

/**
 * The variables a template sees:
 * - `name`: the secret's name; `ref`: its ref as written;
 * - `value`: the value as UTF-8 text (a map's JSON text), `value_base64`: the raw bytes in base64;
 * - `data`: the map (a YAML/JSON/dotenv source, a KV secret, a JSON object string), `{}` otherwise;
 *   a binary (non-UTF-8) entry appears base64-encoded.
 */
export function templateContext(secret: Pick<ResolvedSecret, 'name' | 'ref'>, value: SecretValue) {
  const map = asMap(value);
  const data = map ? (toPlain(map, secret.name, '', 'base64') as Record<string, unknown>) : {};
  const bytes = value.kind === 'bytes' ? value.bytes : Buffer.from(JSON.stringify(data), 'utf8');
  return {
    name: secret.name,
    ref: secret.ref.raw,
    value: bytes.toString('utf8'),
    value_base64: bytes.toString('base64'),
    data,
  };
}

/** Render a secret's template. Throws SK_ERR_TEMPLATE_RENDER naming the secret and the template line. */
export function renderTemplate(
  secret: Pick<ResolvedSecret, 'name' | 'ref'> & { readonly template: string },
  value: SecretValue,
): Buffer {
  const where = `secret "${secret.name}"`;
  const tpls = compile(secret.template, `${where} template`);
  const scope = templateContext(secret, value);
  let out: unknown;
  try {
    out = getEngine().renderSync(tpls, scope);
  } catch (e) {
    const line = errorLine(e);
    const msg = scrub(safeRenderMessage(e, secret.template), scope);
    throw new SkError('SK_ERR_TEMPLATE_RENDER', `${where}: template${line ? ` line ${line}` : ''}: ${msg}`, {
      where: secret.name,
    });
  }
  const buf = Buffer.from(String(out ?? ''), 'utf8');
  if (buf.length > OUTPUT_MAX_BYTES) {
    throw new SkError(
      'SK_ERR_TEMPLATE_RENDER',
      `${where}: the template output is ${buf.length} bytes; the limit is ${OUTPUT_MAX_BYTES}`,
      { where: secret.name },
    );
  }
  return buf;
}

function errorLine(e: unknown): number | undefined {
  if (!LiquidError.is(e)) return undefined;
  const [line] = e.token.getPosition();
  return typeof line === 'number' ? line : undefined;
}

function innermost(e: unknown): unknown {
  let cur = e;
  for (let i = 0; i < 20 && LiquidError.is(cur) && cur.originalError; i++) cur = cur.originalError;
  return cur;
}

/** LiquidJS messages end with ", line:1, col:5"; the line is reported separately. */
function innerMessage(e: unknown): string {
  const inner = innermost(e);
  const msg = inner instanceof Error ? inner.message : String(inner);
  return msg.split('\n')[0]!.replace(/, line:\d+, col:\d+$/, '');
}

/**
 * Only messages known to be about the template (not the data) are shown. LiquidJS's own errors name
 * variables, filters and limits; JS errors from filters (TypeError, SyntaxError from JSON.parse...) can
 * quote their input, which may be the secret, so they are reduced to their type.
 */
function safeRenderMessage(e: unknown, source: string): string {
  const inner = innermost(e);
  if (inner instanceof FilterError) return inner.message;
  const msg = innerMessage(e);
  const undef = /^undefined (variable|filter): (.*)$/.exec(msg);
  if (undef) {
    // `data[data.user]` reports the evaluated key, i.e. a value: show only names written in the template.
    return source.includes(undef[2]!) ? clip(msg) : `undefined ${undef[1]} (a key computed from the data)`;
  }
  if (/limit exceeded/i.test(msg)) return clip(msg);
  const type = inner instanceof Error ? inner.name : typeof inner;
  return `a filter or tag failed (${type}); the details are withheld because they may contain the value`;
}

/** Last line of defence: remove any secret string (≥ 4 chars) that slipped into a message. */
function scrub(msg: string, scope: { value: string; data: Record<string, unknown> }): string {
  const leaves: string[] = [scope.value];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') leaves.push(v);
    else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  walk(scope.data);
  let out = msg;
  for (const s of leaves) if (s.length >= 4 && out.includes(s)) out = out.split(s).join('[redacted]');
  return out;
}

function clip(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}
