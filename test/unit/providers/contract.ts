import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSkError, type SkError } from '../../../src/errors.js';
import { selectKey } from '../../../src/providers/select-key.js';
import type { FetchResult, Provider, ProviderContext, SecretValue } from '../../../src/providers/types.js';
import { parseRef, type SecretRef } from '../../../src/refs.js';

/** The canary used across suites: it must never appear in an error, a version or a log line. */
export const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';

/**
 * What a backend's test gives the shared suite: a live provider and a way to change the backend
 * behind it. Names passed to the harness are short (`[a-z0-9-]`), unique per case; the harness maps them
 * to its own locations (a file, a Vault path, an AWS secret name, a Kubernetes Secret).
 */
export interface ProviderHarness {
  /** The provider under test, created by its factory with the harness's backend settings. */
  readonly provider: Provider;
  /**
   * Create or replace a secret holding one string; returns the ref (without `#key`; a backend that
   * only stores maps, such as a Kubernetes Secret, stores it under one key and returns `<ref>#<key>`).
   */
  putString(name: string, value: string): Promise<string>;
  /**
   * Create or replace a map secret; returns the ref (without `#key`). Data is JSON-like; nested maps
   * appear only when {@link ContractFeatures.nestedMaps} is true.
   */
  putMap(name: string, data: Record<string, unknown>): Promise<string>;
  /** Delete a secret created by put*. */
  remove(name: string): Promise<void>;
  /** A ref to a secret that does not exist. */
  missingRef(): string;
  /** Make the secret unparsable while it contains `content` (only if {@link ContractFeatures.unreadable}). */
  putUnreadable?(name: string, content: string): Promise<string>;
  /** Logs collected from the provider context, checked for the canary. */
  readonly logs?: string[];
  /**
   * Make the backend's next `times` reads fail this way (only if {@link ContractFeatures.faults}):
   * `denied` (the identity may not read), `unavailable` (5xx), `throttled` (429), `garbage` (a 200
   * whose body is not the API's answer). For backends whose test server is an emulator that injects
   * faults; a real server that cannot is left out.
   */
  fault?(kind: ContractFault, times: number): void | Promise<void>;
  /** Drop the faults not consumed yet. */
  clearFaults?(): void | Promise<void>;
  /** Reads that reached the backend so far (every attempt), if the harness can count them. */
  requests?(): number;
  close(): Promise<void>;
}

export type ContractFault = 'denied' | 'unavailable' | 'throttled' | 'garbage';

/** What the backend can do; the matching cases are added (and the provider must then implement them). */
export interface ContractFeatures {
  /** Map values can nest (Vault KV, JSON strings); false for flat stores (Kubernetes Secret data). */
  nestedMaps: boolean;
  /** The provider implements `fetchMany`. */
  fetchMany: boolean;
  /** The provider implements `watch`. */
  watch: boolean;
  /** The harness implements `putUnreadable`. */
  unreadable: boolean;
  /** How long to wait for a watch notification (ms). */
  watchTimeoutMs?: number;
  /** The harness implements `fault` and `clearFaults`: denied, unavailable, throttled, garbage cases are added. */
  faults?: boolean;
}

/** A ProviderContext whose logger records every line (as JSON) into `lines`. */
export function recordingContext(lines: string[] = []): ProviderContext & { lines: string[] } {
  const rec =
    (level: string) =>
    (obj: Record<string, unknown>, msg: string): void => {
      lines.push(JSON.stringify({ level, ...obj, msg }));
    };
  return {
    signal: new AbortController().signal,
    log: { debug: rec('debug'), info: rec('info'), warn: rec('warn') },
    lines,
  };
}

/**
 * The shared provider contract: every provider passes the same cases against its own backend.
 *
 * ```ts
 * describeProviderContract('vault (real server)', { nestedMaps: true, fetchMany: false, watch: false,
 *   unreadable: false }, async () => new VaultHarness(...));
 * ```
 */
export function describeProviderContract(
  name: string,
  features: ContractFeatures,
  createHarness: () => Promise<ProviderHarness>,
): void {
  describe(`provider contract: ${name}`, () => {
    let h: ProviderHarness;
    const ctx = recordingContext();
    let n = 0;
    const uniq = (base: string) => `${base}-${++n}`;
    const fetch = (raw: string): Promise<FetchResult> => h.provider.fetch(parseRef(raw), ctx);
    const text = (v: SecretValue): string => {
      expect(v.kind).toBe('bytes');
      return v.kind === 'bytes' ? v.bytes.toString('utf8') : '';
    };
    const withKey = (ref: string, key: string) => `${ref}#${key}`;
    /** The value `ref` (with its #key, if any) reads as now. */
    const read = async (ref: string): Promise<string> =>
      text(selectKey((await fetch(ref)).value, parseRef(ref)));
    /** Fetching `ref` fails with `code`, the message naming the ref, the canary nowhere in the error. */
    const expectFetchFails = async (ref: string, code: string): Promise<void> => {
      const err = await catchSkAsync(() => fetch(ref));
      expect(err.code).toBe(code);
      expect(err.message).toContain(parseRef(ref).raw);
      expectNoCanary(err);
    };

    beforeAll(async () => {
      h = await createHarness();
    });
    afterAll(async () => {
      await h?.close();
      // nothing the provider logged, ever, may carry the canary
      const logged = [...ctx.lines, ...(h?.logs ?? [])].join('\n');
      expect(logged).not.toContain(CANARY);
    });

    it('declares the optional methods it implements', () => {
      expect(typeof h.provider.fetchMany === 'function').toBe(features.fetchMany);
      expect(typeof h.provider.watch === 'function').toBe(features.watch);
      expect(typeof h.provider.name).toBe('string');
    });

    it('fetches a string secret', async () => {
      const ref = await h.putString(uniq('str'), `pw-${CANARY}`);
      const r = await fetch(ref);
      expect(text(selectKey(r.value, parseRef(ref)))).toBe(`pw-${CANARY}`);
      expect(r.version).toMatch(/\S/);
      expect(r.version).not.toContain(CANARY);
    });

    it('fetches a map secret and selects #key', async () => {
      const ref = await h.putMap(uniq('map'), { username: 'app', password: CANARY });
      const r = await fetch(withKey(ref, 'password'));
      expect(text(selectKey(r.value, parseRef(withKey(ref, 'password'))))).toBe(CANARY);
      expect(text(selectKey(r.value, parseRef(withKey(ref, 'username'))))).toBe('app');
    });

    it('selects a dotted #key path', async () => {
      const data = features.nestedMaps ? { db: { password: CANARY, port: 5432 } } : { 'db.password': CANARY };
      const ref = await h.putMap(uniq('nested'), data);
      const r = await fetch(ref);
      expect(text(selectKey(r.value, parseRef(withKey(ref, 'db.password'))))).toBe(CANARY);
      if (features.nestedMaps) {
        expect(text(selectKey(r.value, parseRef(withKey(ref, 'db.port'))))).toBe('5432');
      }
    });

    it('reports a missing #key without the value', async () => {
      const ref = await h.putMap(uniq('nokey'), { password: CANARY });
      const r = await fetch(ref);
      const err = catchSk(() => selectKey(r.value, parseRef(withKey(ref, 'nope'))));
      expect(err.code).toBe('SK_ERR_KEY_NOT_FOUND');
      expect(err.message).toContain('nope');
      expectNoCanary(err);
    });

    it('changes the version if and only if the value changes', async () => {
      const nm = uniq('ver');
      const ref = await h.putString(nm, `v1-${CANARY}`);
      const a = await fetch(ref);
      const b = await fetch(ref);
      expect(b.version).toBe(a.version);
      await h.putString(nm, `v2-${CANARY}`);
      const c = await fetch(ref);
      expect(text(selectKey(c.value, parseRef(ref)))).toBe(`v2-${CANARY}`);
      expect(c.version).not.toBe(a.version);
      expect(c.version).not.toContain(CANARY);
    });

    it('fails with SK_ERR_SOURCE_NOT_FOUND naming the ref for a missing secret', async () => {
      const raw = h.missingRef();
      await expectFetchFails(raw, 'SK_ERR_SOURCE_NOT_FOUND');
    });

    it('fails with SK_ERR_SOURCE_NOT_FOUND after the secret is deleted, without the old value', async () => {
      const nm = uniq('del');
      const ref = await h.putString(nm, CANARY);
      await fetch(ref);
      await h.remove(nm);
      await expectFetchFails(ref, 'SK_ERR_SOURCE_NOT_FOUND');
    });

    if (features.unreadable) {
      it('fails with SK_ERR_SOURCE_UNREADABLE for an unparsable secret, without its content', async () => {
        const ref = await h.putUnreadable!(uniq('bad'), `{ "a": ${CANARY} ][`);
        await expectFetchFails(ref, 'SK_ERR_SOURCE_UNREADABLE');
      });
    }

    if (features.faults) {
      it('a denied read is SK_ERR_BACKEND_DENIED naming the ref, without the value', async () => {
        const ref = await h.putString(uniq('denied'), CANARY);
        await h.fault!('denied', 1);
        await expectFetchFails(ref, 'SK_ERR_BACKEND_DENIED');
        await h.clearFaults!();
        expect(await read(ref)).toBe(CANARY);
      });

      it('an unavailable backend is SK_ERR_BACKEND_UNAVAILABLE naming the ref; reads work again after', async () => {
        const ref = await h.putString(uniq('unavail'), CANARY);
        await h.fault!('unavailable', 1000);
        await expectFetchFails(ref, 'SK_ERR_BACKEND_UNAVAILABLE');
        await h.clearFaults!();
        expect(await read(ref)).toBe(CANARY);
      });

      it('a throttled read (429) is retried and succeeds', async () => {
        const ref = await h.putString(uniq('throttled'), `t-${CANARY}`);
        await fetch(ref); // credentials in hand: the count below is reads only
        const before = h.requests?.();
        await h.fault!('throttled', 1);
        expect(await read(ref)).toBe(`t-${CANARY}`);
        if (before !== undefined) expect(h.requests!() - before).toBe(2);
        await h.clearFaults!();
      });

      it('a garbage answer is SK_ERR_BACKEND_RESPONSE naming the ref', async () => {
        const ref = await h.putString(uniq('garbage'), CANARY);
        await h.fault!('garbage', 1);
        await expectFetchFails(ref, 'SK_ERR_BACKEND_RESPONSE');
        await h.clearFaults!();
      });
    }

    if (features.fetchMany) {
      it('fetchMany matches fetch, in order, with per-ref errors', async () => {
        const r1 = await h.putString(uniq('many'), `one-${CANARY}`);
        const r2 = await h.putMap(uniq('many'), { k: `two-${CANARY}` });
        const missing = h.missingRef();
        const refs = [r1, missing, r2].map((r) => parseRef(r));
        const many = await h.provider.fetchMany!(refs, ctx);
        expect(many).toHaveLength(3);
        const [a, b, c] = many;
        if (isSkError(a) || isSkError(c)) throw new Error('fetchMany failed for an existing secret');
        expect(isSkError(b)).toBe(true);
        expect((b as SkError).code).toBe('SK_ERR_SOURCE_NOT_FOUND');
        expectNoCanary(b as SkError);
        const one = await fetch(r1);
        const three = await fetch(r2);
        expect(a!.version).toBe(one.version);
        expect(c!.version).toBe(three.version);
        expect(text(selectKey(a!.value, refs[0]!))).toBe(`one-${CANARY}`);
        expect(text(selectKey(c!.value, parseRef(`${r2}#k`)))).toBe(`two-${CANARY}`);
      });
    }

    if (features.watch) {
      it('watch notifies the ref after its secret changes, and stops when closed', async () => {
        const nm = uniq('watch');
        const ref = await h.putString(nm, `w0-${CANARY}`);
        const other = await h.putString(uniq('watch-other'), 'other');
        const seen: SecretRef[] = [];
        const stop = h.provider.watch!([parseRef(ref), parseRef(other)], (r) => seen.push(r), ctx);
        const deadline = Date.now() + (features.watchTimeoutMs ?? 10_000);
        // A watcher needs a moment to arm and gives no ready signal: keep changing until it reports.
        for (let i = 1; !seen.some((r) => r.raw === ref) && Date.now() < deadline; i++) {
          await h.putString(nm, `w${i}-${CANARY}`);
          await sleep(250);
        }
        expect(seen.map((r) => r.raw)).toContain(ref);
        expect(seen.map((r) => r.raw)).not.toContain(other);
        await stop();
        const before = seen.length;
        await h.putString(nm, `after-${CANARY}`);
        await sleep(500);
        expect(seen.length).toBe(before);
      });
    }
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Nothing an error carries (message, where, cause, string form) may contain the canary. */
export function expectNoCanary(err: SkError): void {
  const cause =
    err.cause instanceof Error ? `${err.cause.message} ${err.cause.stack}` : String(err.cause ?? '');
  for (const s of [err.message, String(err), err.where ?? '', cause, JSON.stringify(err)]) {
    expect(s).not.toContain(CANARY);
  }
}

export function catchSk(fn: () => unknown): SkError {
  try {
    fn();
  } catch (e) {
    if (isSkError(e)) return e;
    throw e;
  }
  throw new Error('expected an SkError, nothing was thrown');
}

export async function catchSkAsync(fn: () => Promise<unknown>): Promise<SkError> {
  try {
    await fn();
  } catch (e) {
    if (isSkError(e)) return e;
    throw e;
  }
  throw new Error('expected an SkError, nothing was thrown');
}
