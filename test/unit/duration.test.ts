import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/duration.js';
import { isSkError } from '../../src/errors.js';

describe('parseDuration', () => {
  it.each([
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['250ms', 250],
    ['1d', 86_400_000],
    ['1.5s', 1500],
    [' 2m ', 120_000],
    ['0', 0],
    [0, 0],
  ] as const)('%j → %d ms', (input, ms) => {
    expect(parseDuration(input, 'refresh')).toBe(ms);
  });

  it.each(['30', 30, '', 's', '5 m', '-1s', '1y', '1e3s', 'PT5M', '5m garbage'])(
    'refuses %j with SK_ERR_DURATION_INVALID naming the field',
    (input) => {
      try {
        parseDuration(input as string, 'secrets.db.refresh');
        expect.unreachable();
      } catch (e) {
        expect(isSkError(e) && e.code).toBe('SK_ERR_DURATION_INVALID');
        expect((e as Error).message).toContain('secrets.db.refresh');
      }
    },
  );

  it('refuses a duration too large to be a number of milliseconds', () => {
    expect(() => parseDuration(`${'9'.repeat(400)}s`, 'refresh')).toThrow(/refresh/);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0'],
    [250, '250ms'],
    [30_000, '30s'],
    [5_400_000, '1h30m'],
    [90_061_001, '25h1m1s1ms'],
  ])('%d → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('durations (property)', () => {
  it('parse ∘ format is the identity on whole milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 * 365 * 86_400_000 }), (ms) => {
        expect(parseDuration(formatDuration(ms), 'd')).toBe(ms);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws anything but an SkError, and only returns finite non-negative numbers', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: fc.constantFrom('1', '0', '.', 's', 'm', 'h', 'd', ' ', '9') }),
        ),
        (s) => {
          try {
            const ms = parseDuration(s, 'd');
            expect(Number.isFinite(ms) && ms >= 0).toBe(true);
          } catch (e) {
            expect(isSkError(e) && e.code).toBe('SK_ERR_DURATION_INVALID');
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});
