import { SkError } from '../errors.js';
import type { SecretRef } from '../refs.js';
import type { ProviderFactory } from './types.js';

/**
 * The provider registry. Names are unique: registering a name twice is a bug and throws, unless
 * `override` is set, which exists for tests only.
 */
export class ProviderRegistry {
  readonly #factories = new Map<string, ProviderFactory>();

  register(factory: ProviderFactory, opts: { override?: boolean } = {}): this {
    if (this.#factories.has(factory.name) && !opts.override) {
      throw new Error(`provider "${factory.name}" is already registered`);
    }
    this.#factories.set(factory.name, factory);
    return this;
  }

  names(): string[] {
    return [...this.#factories.keys()].sort();
  }

  has(name: string): boolean {
    return this.#factories.has(name);
  }

  /** The factory for a ref's provider, or SK_ERR_PROVIDER_UNKNOWN naming `where`. */
  get(name: string, where = 'ref'): ProviderFactory {
    const f = this.#factories.get(name);
    if (!f) {
      throw new SkError(
        'SK_ERR_PROVIDER_UNKNOWN',
        // The name is not quoted: it is whatever came before ":", and a pasted secret can be that.
        `${where}: the ref names an unknown provider (known: ${this.names().join(', ')})`,
        {
          where,
        },
      );
    }
    return f;
  }

  /** Validate a ref fully (provider exists, locator/options acceptable), without I/O. */
  validateRef(ref: SecretRef, where: string): void {
    this.get(ref.provider, where).validateRef(ref, where);
  }
}
