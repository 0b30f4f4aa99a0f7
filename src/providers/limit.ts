/**
 * A counting semaphore: at most `max` tasks run at once, the rest wait in order. Providers use it so
 * that an agent with many secrets never opens more than a few requests to a backend at a time.
 */
export class Limiter {
  readonly #max: number;
  #active = 0;
  readonly #waiting: Array<() => void> = [];
  /** The highest number of tasks that ran at once (tests, bench). */
  peak = 0;

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1)
      throw new RangeError(`Limiter: max must be a positive integer, got ${max}`);
    this.#max = max;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#active >= this.#max) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#active++;
    this.peak = Math.max(this.peak, this.#active);
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      // Hand the slot straight to the next task, so the count never dips and lets a newcomer jump in.
      if (next) next();
      else this.#active--;
    }
  }
}
