import { SkError } from './errors.js';

/**
 * Several user mistakes reported at once: an {@link SkError} whose code and `where` are the first
 * mistake's (what a caller that knows only one error shows), whose message names every mistake
 * (`a; SK_ERR_Y: b; …`, so a denial shows them all), and whose `all` lists them.
 */
export class SkErrorList extends SkError {
  readonly all: readonly SkError[];

  constructor(errors: readonly SkError[]) {
    const [first, ...rest] = errors;
    if (!first) throw new Error('SkErrorList needs at least one error');
    super(first.code, [first.message, ...rest.map((e) => `${e.code}: ${e.message}`)].join('; '), {
      where: first.where,
    });
    this.all = errors;
  }
}

/**
 * Collects the mistakes of independent checks: `run` each check, keep its SkError (anything else is a
 * bug and is thrown at once), then `throwIfAny` throws them together.
 */
export class ErrorCollector {
  readonly #errors: SkError[] = [];

  /** Run one check; its SkError is kept, its result returned (undefined when it failed). */
  run<T>(check: () => T): T | undefined {
    try {
      return check();
    } catch (e) {
      if (e instanceof SkErrorList) for (const x of e.all) this.#add(x);
      else if (e instanceof SkError) this.#add(e);
      else throw e;
      return undefined;
    }
  }

  /** The same mistake found by two checks is reported once. */
  #add(e: SkError): void {
    if (!this.#errors.some((x) => x.code === e.code && x.message === e.message)) this.#errors.push(e);
  }

  get size(): number {
    return this.#errors.length;
  }

  throwIfAny(): void {
    if (this.#errors.length === 1) throw this.#errors[0]!;
    if (this.#errors.length > 1) throw new SkErrorList(this.#errors);
  }
}
