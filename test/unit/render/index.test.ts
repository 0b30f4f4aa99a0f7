import { parse as parseProperties } from 'dot-properties';
import { parse as parseDotenv } from 'dotenv';
import fc from 'fast-check';
import { Liquid } from 'liquidjs';
import { describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';
import { isSkError, type SkError } from '../../../src/errors.js';
import type { SecretValue } from '../../../src/providers/types.js';
import { parseRef } from '../../../src/refs.js';
import { compileTemplate, dotenvQuote, renderSecret } from '../../../src/render/index.js';
import type { Format, ResolvedSecret } from '../../../src/spec.js';

const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';

function secret(over: Partial<ResolvedSecret> = {}): ResolvedSecret {
  return {
    name: 'db',
    ref: parseRef('file:./s.yaml'),
    format: 'raw',
    template: undefined,
    file: 'db',
    mode: 0o440,
    refreshMs: 0,
    env: undefined,
    ...over,
  };
}
const map = (data: Record<string, unknown>): SecretValue => ({ kind: 'map', data });
const bytes = (s: string | Buffer): SecretValue => ({ kind: 'bytes', bytes: Buffer.from(s) });
const render = (format: Format, v: SecretValue) => renderSecret(secret({ format }), v).toString('utf8');

function sk(fn: () => unknown): SkError {
  try {
    fn();
  } catch (e) {
    if (isSkError(e)) return e;
    throw e;
  }
  throw new Error('expected an SkError');
}

describe('formats', () => {
  const creds = map({ user: 'app', password: CANARY, port: 5432, tls: { ca: 'CA' } });

  it('raw: bytes unchanged (binary too); a map as JSON', () => {
    const bin = Buffer.from([0, 1, 255, 10]);
    expect(renderSecret(secret(), bytes(bin)).equals(bin)).toBe(true);
    expect(JSON.parse(render('raw', creds))).toEqual(creds.kind === 'map' && creds.data);
  });

  it('json: a map, a JSON-object string, or a plain string', () => {
    expect(JSON.parse(render('json', creds))).toEqual({
      user: 'app',
      password: CANARY,
      port: 5432,
      tls: { ca: 'CA' },
    });
    expect(JSON.parse(render('json', bytes('{"a":"b"}')))).toEqual({ a: 'b' });
    expect(JSON.parse(render('json', bytes('he said "hi"\n')))).toBe('he said "hi"\n');
  });

  it('json: Buffers inside a map (Kubernetes Secret data) become text', () => {
    expect(JSON.parse(render('json', map({ k: Buffer.from('v') })))).toEqual({ k: 'v' });
  });

  it('refuses binary that is not UTF-8 inside a map, naming the key and not the bytes', () => {
    const e = sk(() => render('json', map({ cert: Buffer.from([0xff, 0xfe, 0x00]) })));
    expect(e.code).toBe('SK_ERR_RENDER');
    expect(e.message).toContain('"db"');
    expect(e.message).toContain('cert');
  });

  it('env: KEY="value" lines that the dotenv parser reads back exactly', () => {
    const out = render(
      'env',
      map({ USER: 'app', PASSWORD: CANARY, PORT: 5432, EMPTY: null, NESTED: { a: 1 } }),
    );
    expect(out).toContain(`PASSWORD="${CANARY}"\n`);
    expect(parseDotenv(out)).toEqual({
      USER: 'app',
      PASSWORD: CANARY,
      PORT: '5432',
      EMPTY: '',
      NESTED: '{"a":1}',
    });
  });

  it('env: values with quotes, $, backslashes and line breaks round-trip', () => {
    const data = {
      A: 'it\'s "quoted"',
      B: 'a\nmulti\nline',
      C: 'back\\slash $HOME',
      D: "it's\nmulti",
      E: ' spaced # not a comment ',
      F: 'x\'y"z\\w',
    };
    expect(parseDotenv(render('env', map(data)))).toEqual(data);
  });

  it('env: any value is either written so dotenv reads it back, or refused (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
          fc.string({
            unit: fc.constantFrom('a', ' ', '"', "'", '`', '\\', '$', '#', '=', '\n', '\r', 'é'),
            maxLength: 12,
          }),
        ),
        (v) => {
          const q = dotenvQuote(v);
          if (q === undefined) {
            // refused only when no quoting fits: (' or CR) and (" or \\) and (` or CR)
            expect(v.includes("'") || v.includes('\r')).toBe(true);
            expect(v.includes('"') || v.includes('\\')).toBe(true);
            expect(v.includes('`') || v.includes('\r')).toBe(true);
            return;
          }
          expect(parseDotenv(`K=${q}\n`).K).toBe(v);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('env: refuses a single string and bad key names, naming the secret but not the value', () => {
    const e1 = sk(() => render('env', bytes(CANARY)));
    expect(e1.code).toBe('SK_ERR_RENDER');
    expect(e1.message).toContain('"db"');
    expect(e1.message).not.toContain(CANARY);
    const e2 = sk(() => render('env', map({ 'bad-key': CANARY })));
    expect(e2.code).toBe('SK_ERR_RENDER');
    expect(e2.message).toContain('bad-key');
    expect(e2.message).not.toContain(CANARY);
  });

  it('env: accepts a JSON object string (an AWS SecretString)', () => {
    expect(parseDotenv(render('env', bytes(`{"PASSWORD":"${CANARY}"}`)))).toEqual({ PASSWORD: CANARY });
  });

  it('yaml: a map round-trips through the YAML parser; a string is a YAML string', () => {
    const data = { user: 'app', password: 'yes', n: '0123', multi: 'a\nb', nested: { list: [1, 'two'] } };
    expect(YAML.parse(render('yaml', map(data)))).toEqual(data);
    expect(YAML.parse(render('yaml', bytes('true')))).toBe('true');
  });

  it('json and yaml: any JSON-like map reads back equal (property)', () => {
    const key = fc.string({ minLength: 1, maxLength: 8 }).filter((k) => k !== '__proto__');
    const leaf = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.boolean(), fc.constant(null));
    const tree = fc.letrec((tie) => ({
      node: fc.dictionary(
        key,
        fc.oneof({ depthSize: 'small' }, leaf, tie('node'), fc.array(leaf, { maxLength: 3 })),
        {
          maxKeys: 5,
        },
      ),
    })).node;
    fc.assert(
      fc.property(tree, (data) => {
        expect(JSON.parse(render('json', map(data)))).toEqual(data);
        expect(YAML.parse(render('yaml', map(data)))).toEqual(data);
        expect(JSON.parse(render('raw', map(data)))).toEqual(data);
      }),
      { numRuns: 300 },
    );
  });

  it('properties: any flat string map reads back equal (property)', () => {
    const key = fc
      .string({ minLength: 1, maxLength: 8 })
      .filter((k) => k !== '__proto__' && !k.includes('.'));
    fc.assert(
      fc.property(fc.dictionary(key, fc.string({ maxLength: 20 }), { maxKeys: 6 }), (data) => {
        expect(parseProperties(render('properties', map(data)))).toEqual(data);
      }),
      { numRuns: 300 },
    );
  });

  it('properties: a map (nested maps flattened with dots) round-trips through dot-properties', () => {
    const out = render(
      'properties',
      map({ 'db.user': 'app', pw: `a=b:c ${CANARY}`, uni: 'é€', nested: { k: 'v' } }),
    );
    expect(parseProperties(out)).toEqual({
      'db.user': 'app',
      pw: `a=b:c ${CANARY}`,
      uni: 'é€',
      'nested.k': 'v',
    });
    expect(sk(() => render('properties', bytes('x'))).code).toBe('SK_ERR_RENDER');
  });
});

describe('templates', () => {
  const tpl = (template: string, v: SecretValue, name = 'db') =>
    renderSecret(secret({ name, template }), v).toString('utf8');
  const creds = map({ user: 'app', password: CANARY, port: 5432 });

  it('renders data, value, name and ref, and wins over the format', () => {
    const t = 'postgres://{{ data.user }}:{{ data.password }}@db:{{ data.port }}/{{ name }} {{ ref }}';
    const out = renderSecret(secret({ template: t, format: 'env' }), creds).toString();
    expect(out).toBe(`postgres://app:${CANARY}@db:5432/db file:./s.yaml`);
    expect(tpl('[{{ value }}]', bytes('plain'))).toBe('[plain]');
  });

  it('offers base64, json, yaml and dotenv_quote filters', () => {
    expect(tpl('{{ value | base64_encode }}', bytes('hi'))).toBe('aGk=');
    expect(tpl('{{ value_base64 }}', bytes(Buffer.from([255, 0])))).toBe('/wA=');
    expect(tpl('{{ value | base64_decode }}', bytes('aGk='))).toBe('hi');
    expect(JSON.parse(tpl('{{ data | json }}', creds))).toEqual({
      user: 'app',
      password: CANARY,
      port: 5432,
    });
    expect(YAML.parse(tpl('{{ data | yaml }}', creds))).toEqual({
      user: 'app',
      password: CANARY,
      port: 5432,
    });
    expect(parseDotenv(tpl('P={{ data.password | dotenv_quote }}', map({ password: 'a"b\nc' }))).P).toBe(
      'a"b\nc',
    );
  });

  it('a binary (non-UTF-8) entry does not break a template; it is offered as base64', () => {
    const v = map({ 'keystore.jks': Buffer.from([0xfe, 0xed, 0xfe, 0xed]), 'tls.crt': Buffer.from('CERT') });
    expect(tpl('{{ data["tls.crt"] }}|{{ data["keystore.jks"] }}', v)).toBe('CERT|/u3+7Q==');
  });

  it('loops and conditionals work; optional keys via if and default', () => {
    const t =
      '{% for kv in data %}{{ kv[0] }};{% endfor %}|{% if data.nope %}x{% endif %}{{ data.nope | default: "d" }}';
    expect(tpl(t, map({ a: '1', b: '2' }))).toBe('a;b;|d');
  });

  it('a missing variable is an error naming the secret and the line, without values', () => {
    const e = sk(() => tpl(`line one {{ data.user }}\n\nline three {{ data.pasword }}`, creds));
    expect(e.code).toBe('SK_ERR_TEMPLATE_RENDER');
    expect(e.message).toBe('secret "db": template line 3: undefined variable: data.pasword');
  });

  it('a key computed from the data is not echoed', () => {
    const e = sk(() => tpl('{{ data[data.password] }}', creds));
    expect(e.code).toBe('SK_ERR_TEMPLATE_RENDER');
    expect(e.message).not.toContain(CANARY);
    const e2 = sk(() => tpl('{{ data[data.user] }}', creds));
    expect(e2.message).not.toContain('app');
  });

  it('failures inside filters do not leak the input', () => {
    const e = sk(() => tpl('{{ data.password | json_parse }}', creds));
    expect(e.code).toBe('SK_ERR_TEMPLATE_RENDER');
    expect(e.message).toContain('json_parse');
    expect(e.message).not.toContain(CANARY);
  });

  it('cannot reach prototypes or constructors', () => {
    for (const t of [
      '{{ data.constructor }}',
      '{{ value.constructor.name }}',
      '{{ data.__proto__ }}',
      '{{ data.toString }}',
    ]) {
      const e = sk(() => tpl(t, creds));
      expect(e.code).toBe('SK_ERR_TEMPLATE_RENDER');
    }
  });

  it('cannot include files from inside a {% liquid %} block either', () => {
    const e = sk(() => compileTemplate("{% liquid\n  assign a = 1\n  include 'x'\n%}", 'w'));
    expect(e.message).toBe('w: template line 3: the "include" tag is disabled: templates cannot read files');
  });

  it('cannot include, render or lay out files: refused at compile time', () => {
    const tags = ['{% include "/etc/passwd" %}', "{% render 'x' %}", '{% layout "x" %}'];
    for (const t of [...tags, '{%- include "x" -%}', '{% capture c %}{% render "x" %}{% endcapture %}']) {
      const e = sk(() => compileTemplate(`ok\n${t}`, 'sidekey.yaml:secrets.db.template'));
      expect(e.code).toBe('SK_ERR_TEMPLATE_SYNTAX');
      expect(e.message).toMatch(
        /^sidekey\.yaml:secrets\.db\.template: template line 2: the "\w+" tag is disabled/,
      );
    }
  });

  it('unknown filters and unclosed tags are syntax errors naming where and the line', () => {
    const e = sk(() => compileTemplate('a\nb\n{{ x | nosuch }}', 'pod/annotations/sidekey.io/template-db'));
    expect(e.code).toBe('SK_ERR_TEMPLATE_SYNTAX');
    expect(e.message).toBe(
      'pod/annotations/sidekey.io/template-db: template line 3: undefined filter: nosuch',
    );
    expect(sk(() => compileTemplate('{% if x %}', 'w')).message).toMatch(/^w: template line 1: .*not closed/);
  });

  it('runaway templates hit the limits instead of hanging or exhausting memory', () => {
    const e = sk(() => tpl('{% for i in (1..1000000000) %}{{ data.password }}{% endfor %}', creds));
    expect(e.code).toBe('SK_ERR_TEMPLATE_RENDER');
    expect(e.message).toMatch(/limit exceeded/);
    expect(e.message).not.toContain(CANARY);
    const big = sk(() => compileTemplate('x'.repeat(70_000), 'w'));
    expect(big.code).toBe('SK_ERR_TEMPLATE_SYNTAX');
  });

  it('caps the size of the output', () => {
    const t = '{% for i in (1..300) %}{{ value }}{% endfor %}';
    const e = sk(() => tpl(t, bytes('x'.repeat(8192))));
    expect(e.code).toBe('SK_ERR_TEMPLATE_RENDER');
    expect(e.message).toMatch(/limit/);
  });

  it('compiles a template once and caches it', () => {
    const t = `{{ data.user }}-{{ data.port }} ${Math.random()}`;
    const spy = vi.spyOn(Liquid.prototype, 'parse');
    try {
      compileTemplate(t, 'w');
      compileTemplate(t, 'w');
      expect(tpl(t, creds)).toMatch(/^app-5432 /);
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('URLs from templates', () => {
  const url = (tpl: string, password: string) =>
    renderSecret(secret({ template: tpl }), map({ user: 'app', password, host: 'db' })).toString('utf8');
  const TPL = 'postgres://{{ data.user }}:{{ data.password | percent_encode }}@{{ data.host }}:5432/shop';

  it('percent_encode: the password decodes back from the URL, spaces included', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), (pw) => {
        const u = new URL(url(TPL, pw));
        expect(decodeURIComponent(u.password)).toBe(pw);
        expect(u.username).toBe('app');
        expect(u.hostname).toBe('db');
      }),
    );
    expect(url(TPL, "p@ss w:rd/+%?#!'()*")).toBe(
      'postgres://app:p%40ss%20w%3Ard%2F%2B%25%3F%23%21%27%28%29%2A@db:5432/shop',
    );
  });

  it('url_encode (form encoding) writes a space as +, which a URL does not decode back: the docs use percent_encode', () => {
    const u = new URL(url(TPL.replace('percent_encode', 'url_encode'), 'a b'));
    expect(decodeURIComponent(u.password)).toBe('a+b');
  });
});
