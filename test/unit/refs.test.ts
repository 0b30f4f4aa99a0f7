import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSkError, SkError } from '../../src/errors.js';
import { formatRef, parseRef } from '../../src/refs.js';

describe('parseRef', () => {
  it.each([
    ['vault:secret/data/app/db#password', 'vault', 'secret/data/app/db', {}, 'password'],
    [
      'aws:prod/app/db?stage=AWSPREVIOUS#password',
      'aws',
      'prod/app/db',
      { stage: 'AWSPREVIOUS' },
      'password',
    ],
    [
      'aws:arn:aws:secretsmanager:eu-west-1:123:secret:db-AbC',
      'aws',
      'arn:aws:secretsmanager:eu-west-1:123:secret:db-AbC',
      {},
      undefined,
    ],
    ['k8s:db-credentials#tls.crt', 'k8s', 'db-credentials', {}, 'tls.crt'],
    ['file:./secrets.yaml#db.password', 'file', './secrets.yaml', {}, 'db.password'],
    ['  file:/abs/x  ', 'file', '/abs/x', {}, undefined],
  ])('%s', (raw, provider, locator, options, key) => {
    const r = parseRef(raw);
    expect(r).toEqual({ raw: raw.trim(), provider, locator, options, key });
    expect(Object.isFrozen(r)).toBe(true);
  });

  it.each([
    ['', 'has no provider'],
    ['nocolon', 'has no provider'],
    [':x', 'has no provider'],
    ['Vault:x', 'bad provider name'],
    ['vault:', 'empty locator'],
    ['vault:#k', 'empty locator'],
    ['vault:x#', 'empty #key'],
    ['vault:x#.a', 'empty #key'],
    ['vault:x#a..b', 'empty #key'],
    ['vault:x?=1', 'empty option name'],
    ['aws:x?stage=a&stage=b', 'repeats an option'],
  ])('refuses %j (%s) with SK_ERR_REF_SYNTAX naming where', (raw, why) => {
    try {
      parseRef(raw, 'secrets.db.ref');
      expect.unreachable();
    } catch (e) {
      expect(isSkError(e) && e.code).toBe('SK_ERR_REF_SYNTAX');
      expect((e as Error).message).toContain('secrets.db.ref');
      expect((e as Error).message).toContain(why);
    }
  });

  it('refuses a non-string', () => {
    expect(() => parseRef(42 as unknown as string)).toThrow(/is not a string/);
  });
});

const provider = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/);
// no ? or # (they delimit), no surrounding whitespace (the ref is trimmed)
const locator = fc.stringMatching(/^[^?#\s]([^?#]{0,20}[^?#\s])?$/);
const keyPart = fc.stringMatching(/^[^.\s]{1,6}$/);
const key = fc.option(
  fc.array(keyPart, { minLength: 1, maxLength: 3 }).map((a) => a.join('.')),
  {
    nil: undefined,
  },
);
const options = fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), fc.string({ maxLength: 8 }), {
  maxKeys: 3,
});

describe('parseRef ∘ formatRef (property)', () => {
  it('round-trips', () => {
    fc.assert(
      fc.property(provider, locator, options, key, (p, l, o, k) => {
        const ref = { provider: p, locator: l, options: o, key: k };
        const text = formatRef(ref);
        const back = parseRef(text);
        expect({
          provider: back.provider,
          locator: back.locator,
          options: back.options,
          key: back.key,
        }).toEqual(ref);
        expect(back.raw).toBe(text);
        expect(formatRef(back)).toBe(text);
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws anything but an SkError', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: fc.constantFrom('a', ':', '#', '?', '=', '&', '.', '%', ' ') }),
        ),
        (s) => {
          try {
            const r = parseRef(s);
            expect(r.provider).toMatch(/^[a-z][a-z0-9-]*$/);
            expect(r.locator).not.toBe('');
          } catch (e) {
            expect(isSkError(e) && e.code).toBe('SK_ERR_REF_SYNTAX');
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('parseRef errors never quote the value', () => {
  const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';
  // A secret pasted into sidekey.io/secret-<name> instead of a ref: the denial names the annotation.
  for (const pasted of [CANARY, `${CANARY}:x`, `Bad:${CANARY}`, `vault:${CANARY}#`, `aws:?${CANARY}`]) {
    it(`refuses ${pasted.length}-character input without quoting it`, () => {
      let err: unknown;
      try {
        parseRef(pasted, 'sidekey.io/secret-db');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SkError);
      const e = err as SkError;
      expect(e.code).toBe('SK_ERR_REF_SYNTAX');
      expect(e.message).toContain('sidekey.io/secret-db');
      expect(e.message).not.toContain(CANARY);
      expect(e.message).not.toContain(CANARY.slice(0, 8));
    });
  }
});
