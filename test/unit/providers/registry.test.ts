import { describe, expect, it } from 'vitest';
import { isSkError, SkError } from '../../../src/errors.js';
import { defaultRegistry } from '../../../src/providers/index.js';
import { ProviderRegistry } from '../../../src/providers/registry.js';
import type { ProviderFactory } from '../../../src/providers/types.js';
import { parseRef } from '../../../src/refs.js';

function factory(name: string, validate: ProviderFactory['validateRef'] = () => {}): ProviderFactory {
  return {
    name,
    validateRef: validate,
    create: () => ({
      name,
      fetch: async () => ({ value: { kind: 'bytes', bytes: Buffer.from('x') }, version: '1' }),
    }),
  };
}

describe('ProviderRegistry', () => {
  it('refuses a duplicate name', () => {
    const r = new ProviderRegistry().register(factory('a'));
    expect(() => r.register(factory('a'))).toThrow(/"a" is already registered/);
  });

  it('allows replacing a provider only with override (tests)', () => {
    const second = factory('a');
    const r = new ProviderRegistry().register(factory('a')).register(second, { override: true });
    expect(r.get('a')).toBe(second);
  });

  it('lists names sorted and answers has()', () => {
    const r = new ProviderRegistry().register(factory('vault')).register(factory('aws'));
    expect(r.names()).toEqual(['aws', 'vault']);
    expect(r.has('aws')).toBe(true);
    expect(r.has('gcp')).toBe(false);
  });

  it('an unknown provider is SK_ERR_PROVIDER_UNKNOWN naming where and the known ones', () => {
    const r = new ProviderRegistry().register(factory('file'));
    try {
      r.get('vualt', 'secrets.db.ref');
      expect.unreachable();
    } catch (e) {
      expect(isSkError(e) && e.code).toBe('SK_ERR_PROVIDER_UNKNOWN');
      expect((e as Error).message).toBe('secrets.db.ref: the ref names an unknown provider (known: file)');
    }
  });

  it("validateRef delegates to the provider's own check", () => {
    const r = new ProviderRegistry().register(
      factory('x', (ref, where) => {
        if (ref.locator === 'bad') throw new SkError('SK_ERR_REF_SYNTAX', `${where}: bad locator`);
      }),
    );
    expect(() => r.validateRef(parseRef('x:good'), 'w')).not.toThrow();
    expect(() => r.validateRef(parseRef('x:bad'), 'w')).toThrow(/w: bad locator/);
    expect(() => r.validateRef(parseRef('y:any'), 'w')).toThrow(/unknown provider/);
  });

  it('the default registry holds each built-in provider once, under its own name', () => {
    const r = defaultRegistry();
    expect(r.names()).toContain('file');
    for (const n of r.names()) expect(r.get(n).name).toBe(n);
    // two registries are independent (no shared mutable state)
    expect(defaultRegistry()).not.toBe(r);
  });
});

describe('provider ref checks never quote the ref', () => {
  const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';
  // Each parses as a ref but is refused by its provider's validateRef; it may be a pasted secret.
  it.each([
    ['aws', `aws:${CANARY} pasted`],
    ['vault', `vault:/${CANARY}`],
    ['k8s', `k8s:${CANARY}`],
    ['file', `file:${CANARY}\0`],
  ])('%s', (_name, raw) => {
    let err: unknown;
    try {
      defaultRegistry().validateRef(parseRef(raw, 'sidekey.io/secret-db'), 'sidekey.io/secret-db');
    } catch (e) {
      err = e;
    }
    expect(isSkError(err) && err.code).toBe('SK_ERR_REF_SYNTAX');
    const msg = (err as Error).message;
    expect(msg).toContain('sidekey.io/secret-db');
    expect(msg).not.toContain(CANARY.slice(0, 8));
  });
});
