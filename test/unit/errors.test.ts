import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ERRORS,
  type ErrorCode,
  firstLine,
  isSkError,
  oneLine,
  SkError,
  toSkError,
  toValueSafeSkError,
} from '../../src/errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const documented = new Set([...doc.matchAll(/^\|\s*`(SK_ERR_[A-Z0-9_]+)`\s*\|/gm)].map((m) => m[1]!));

describe('the error table', () => {
  it.each(Object.keys(ERRORS))('%s is documented in docs/errors.md', (code) => {
    expect(documented.has(code)).toBe(true);
  });

  it('documents no code that does not exist', () => {
    expect([...documented].filter((c) => !(c in ERRORS))).toEqual([]);
  });

  it('codes are SK_ERR_ names with a summary, a kind and an HTTP status', () => {
    for (const [code, def] of Object.entries(ERRORS)) {
      expect(code).toMatch(/^SK_ERR_[A-Z][A-Z0-9_]*$/);
      expect(def.summary.length).toBeGreaterThan(5);
      expect(['input', 'runtime']).toContain(def.kind);
      expect(def.status).toBeGreaterThanOrEqual(400);
      expect(def.status).toBeLessThan(600);
    }
  });
});

describe('SkError', () => {
  it('is one line, carries code, where and kind, and prints as CODE: message', () => {
    const e = new SkError('SK_ERR_SPEC_INVALID', 'spec:secrets.db.format:\n  bad\tvalue ', {
      where: 'spec:secrets.db',
    });
    expect(e.message).toBe('spec:secrets.db.format: bad value');
    expect(e.code).toBe('SK_ERR_SPEC_INVALID');
    expect(e.where).toBe('spec:secrets.db');
    expect(e.kind).toBe('input');
    expect(String(e)).toBe('SK_ERR_SPEC_INVALID: spec:secrets.db.format: bad value');
    expect(e).toBeInstanceOf(Error);
    expect(isSkError(e)).toBe(true);
    expect(isSkError(new Error('x'))).toBe(false);
  });

  it('runtime codes report kind runtime', () => {
    expect(new SkError('SK_ERR_SOURCE_NOT_FOUND', 'x').kind).toBe('runtime');
  });

  it('keeps a cause only when given', () => {
    const cause = new Error('inner');
    expect(new SkError('SK_ERR_WRITE', 'x', { cause }).cause).toBe(cause);
    expect('cause' in new SkError('SK_ERR_WRITE', 'x')).toBe(false);
  });

  it('toSkError passes SkErrors through and wraps anything else on one line', () => {
    const sk = new SkError('SK_ERR_WRITE', 'x');
    expect(toSkError(sk)).toBe(sk);
    const w = toSkError(new Error('boom\nat line'), 'SK_ERR_NOTIFY', 'http:http://x');
    expect(w.code).toBe('SK_ERR_NOTIFY');
    expect(w.message).toBe('http:http://x: boom at line');
    expect(toSkError('str').code).toBe<ErrorCode>('SK_ERR_INTERNAL');
  });

  it('toValueSafeSkError passes SkErrors through and shows anything else by its type only', () => {
    const sk = new SkError('SK_ERR_WRITE', 'x');
    expect(toValueSafeSkError(sk, 'SK_ERR_RENDER', 'secrets.a')).toBe(sk);
    let parseError: unknown;
    try {
      JSON.parse('SKCANARY-7f3c9e2a-do-not-print');
    } catch (e) {
      parseError = e;
    }
    const w = toValueSafeSkError(parseError, 'SK_ERR_RENDER', 'secrets.a');
    expect(w.code).toBe('SK_ERR_RENDER');
    expect(w.message).toMatch(/^secrets\.a: failed unexpectedly \(SyntaxError\)/);
    expect(w.message).not.toContain('SKCANARY');
    expect(w.cause).toBeUndefined();
  });

  it('firstLine keeps the reason of a parse error, not the snippet after it', () => {
    const e = new Error('bad indentation (3:4)\n\n 2 | token: SKCANARY-7f3c\n---^');
    expect(firstLine(e)).toBe('bad indentation (3:4)');
    expect(firstLine('x'.repeat(300))).toHaveLength(201);
  });

  it('oneLine collapses whitespace', () => {
    expect(oneLine('  a \n\n b\t c  ')).toBe('a b c');
  });
});
