import { distance as levenshteinOf } from 'fastest-levenshtein';
import { describe, expect, it } from 'vitest';
import { ErrorCollector, SkErrorList } from '../../src/error-list.js';
import { SkError } from '../../src/errors.js';
import { closest, distance } from '../../src/suggest.js';

describe('closest', () => {
  it('finds typos, transpositions and near misses, and nothing for unrelated words', () => {
    expect(closest('secert', ['secret', 'format', 'template'])).toBe('secret');
    expect(closest('refrsh', ['refresh', 'mode'])).toBe('refresh');
    expect(closest('vault-adr', ['vault-addr', 'vault-role'])).toBe('vault-addr');
    expect(closest('banana', ['secret', 'format'])).toBeUndefined();
    expect(closest('x', ['mode'])).toBeUndefined();
    expect(closest('moed', ['mode', 'file'])).toBe('mode');
    expect(distance('secert', 'secret')).toBe(1);
    expect(distance('abc', 'abc')).toBe(0);
    expect(distance('abcd', 'badc')).toBe(levenshteinOf('abcd', 'badc'));
  });
});

describe('ErrorCollector', () => {
  it('keeps every SkError, flattens lists, rethrows anything else at once', () => {
    const c = new ErrorCollector();
    expect(c.run(() => 1)).toBe(1);
    c.run(() => {
      throw new SkError('SK_ERR_MODE_INVALID', 'sidekey.io/mode-a: bad', { where: 'sidekey.io/mode-a' });
    });
    c.run(() => {
      throw new SkErrorList([
        new SkError('SK_ERR_DURATION_INVALID', 'sidekey.io/refresh: bad', { where: 'sidekey.io/refresh' }),
        new SkError('SK_ERR_ANNOTATION_UNKNOWN', 'sidekey.io/x: unknown', { where: 'sidekey.io/x' }),
      ]);
    });
    expect(() => c.run(() => JSON.parse('{'))).toThrow(SyntaxError);
    expect(c.size).toBe(3);
    let thrown: unknown;
    try {
      c.throwIfAny();
    } catch (e) {
      thrown = e;
    }
    const list = thrown as SkErrorList;
    expect(list).toBeInstanceOf(SkErrorList);
    expect(list.code).toBe('SK_ERR_MODE_INVALID');
    expect(list.where).toBe('sidekey.io/mode-a');
    expect(list.all.map((e) => e.code)).toEqual([
      'SK_ERR_MODE_INVALID',
      'SK_ERR_DURATION_INVALID',
      'SK_ERR_ANNOTATION_UNKNOWN',
    ]);
    expect(list.toString()).toBe(
      'SK_ERR_MODE_INVALID: sidekey.io/mode-a: bad; SK_ERR_DURATION_INVALID: sidekey.io/refresh: bad; SK_ERR_ANNOTATION_UNKNOWN: sidekey.io/x: unknown',
    );
    const one = new ErrorCollector();
    one.run(() => {
      throw new SkError('SK_ERR_MODE_INVALID', 'm');
    });
    expect(() => one.throwIfAny()).toThrow(SkError);
    new ErrorCollector().throwIfAny();
  });
});
