import { describe, expect, it } from 'vitest';
import { isSkError, type SkError } from '../../../src/errors.js';
import { selectKey } from '../../../src/providers/select-key.js';
import type { SecretValue } from '../../../src/providers/types.js';
import { parseRef } from '../../../src/refs.js';

const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';
const text = (v: SecretValue) =>
  v.kind === 'bytes' ? v.bytes.toString('utf8') : `map:${JSON.stringify(v.data)}`;
const sel = (v: SecretValue, ref: string) => selectKey(v, parseRef(ref));
function sk(fn: () => unknown): SkError {
  try {
    fn();
  } catch (e) {
    if (isSkError(e)) return e;
    throw e;
  }
  throw new Error('expected an SkError');
}

describe('selectKey', () => {
  const value: SecretValue = {
    kind: 'map',
    data: {
      password: CANARY,
      'tls.crt': 'CERT',
      tls: { crt: 'NESTED' },
      db: { port: 5432, hosts: ['a', 'b'], opts: { ssl: true }, nil: null },
      bin: Buffer.from([1, 2]),
    },
  };

  it('without #key returns the value itself', () => {
    expect(sel(value, 'x:y')).toBe(value);
  });

  it('selects strings, dotted paths, array indexes; an exact key with dots wins', () => {
    expect(text(sel(value, 'x:y#password'))).toBe(CANARY);
    expect(text(sel(value, 'x:y#tls.crt'))).toBe('CERT');
    expect(text(sel(value, 'x:y#db.hosts.1'))).toBe('b');
  });

  it('numbers, booleans, arrays and null become their JSON text; maps stay maps; Buffers stay bytes', () => {
    expect(text(sel(value, 'x:y#db.port'))).toBe('5432');
    expect(text(sel(value, 'x:y#db.opts.ssl'))).toBe('true');
    expect(text(sel(value, 'x:y#db.hosts'))).toBe('["a","b"]');
    expect(text(sel(value, 'x:y#db.nil'))).toBe('null');
    expect(sel(value, 'x:y#db.opts')).toEqual({ kind: 'map', data: { ssl: true } });
    expect(sel(value, 'x:y#bin')).toEqual({ kind: 'bytes', bytes: Buffer.from([1, 2]) });
  });

  it('parses a bytes value holding a JSON object (an AWS SecretString)', () => {
    const v: SecretValue = {
      kind: 'bytes',
      bytes: Buffer.from(JSON.stringify({ user: 'u', password: CANARY })),
    };
    expect(text(sel(v, 'aws:db#password'))).toBe(CANARY);
  });

  it('a missing key names the ref, the key and the key names, never values', () => {
    const e = sk(() => sel(value, 'file:s.yaml#passwd'));
    expect(e.code).toBe('SK_ERR_KEY_NOT_FOUND');
    expect(e.message).toContain('file:s.yaml#passwd');
    expect(e.message).toContain('"passwd"');
    expect(e.message).toContain('password');
    expect(e.message).not.toContain(CANARY);
    expect(e.message).not.toContain('CERT');
  });

  it('does not walk prototypes', () => {
    expect(sk(() => sel(value, 'x:y#constructor')).code).toBe('SK_ERR_KEY_NOT_FOUND');
    expect(sk(() => sel(value, 'x:y#password.length')).code).toBe('SK_ERR_KEY_NOT_FOUND');
    expect(sk(() => sel(value, 'x:y#db.hosts.length')).code).toBe('SK_ERR_KEY_NOT_FOUND');
  });

  it('caps the key list at 10 names', () => {
    const data = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, 'v']));
    expect(sk(() => sel({ kind: 'map', data }, 'x:y#nope')).message).toContain('… 5 more');
  });

  it('#key on a value that is not a JSON object is refused without the value', () => {
    for (const raw of [CANARY, `["${CANARY}"]`, '42']) {
      const e = sk(() => sel({ kind: 'bytes', bytes: Buffer.from(raw) }, 'aws:db#password'));
      expect(e.code).toBe('SK_ERR_KEY_NOT_FOUND');
      expect(e.message).toContain('not a JSON object');
      expect(e.message).not.toContain(CANARY);
    }
  });
});
