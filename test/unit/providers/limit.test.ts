import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Limiter } from '../../../src/providers/limit.ts';

describe('Limiter', () => {
  it('never runs more than max tasks at once, runs them all, keeps results and errors', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.nat(5), { maxLength: 30 }),
        async (max, delays) => {
          const l = new Limiter(max);
          let running = 0;
          let peak = 0;
          const out = await Promise.allSettled(
            delays.map((d, i) =>
              l.run(async () => {
                running++;
                peak = Math.max(peak, running);
                await new Promise((r) => setTimeout(r, d));
                running--;
                if (i % 7 === 3) throw new Error(`e${i}`);
                return i;
              }),
            ),
          );
          expect(peak).toBeLessThanOrEqual(max);
          expect(l.peak).toBe(peak);
          out.forEach((r, i) => {
            if (i % 7 === 3) expect(r.status).toBe('rejected');
            else expect(r).toEqual({ status: 'fulfilled', value: i });
          });
        },
      ),
      { numRuns: 30 },
    );
  });

  it('refuses a non-positive max', () => {
    expect(() => new Limiter(0)).toThrow(RangeError);
  });
});
