import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/fingerprint.js';

const PIN = '1234';
const plainSha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** The fingerprint of `s` as computed by a separate Node process (its own key). */
function fingerprintInOtherProcess(s: string): string {
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '-e',
      `import(${JSON.stringify(path.resolve('src/fingerprint.ts'))}).then((m) => process.stdout.write(m.fingerprint(process.argv[1])))`,
      s,
    ],
    { encoding: 'utf8' },
  );
  expect(r.error).toBeUndefined();
  expect(r.status).toBe(0);
  return r.stdout;
}

describe('fingerprint', () => {
  it('of a short secret is 16 hex digits and not a prefix of its plain SHA-256', () => {
    const fp = fingerprint(PIN);
    expect(fp).toMatch(/^[0-9a-f]{16}$/);
    expect(plainSha256(PIN).startsWith(fp)).toBe(false);
    expect(plainSha256(PIN)).not.toContain(fp);
  });

  it('is stable within the process, for text and its UTF-8 bytes alike', () => {
    expect(fingerprint(PIN)).toBe(fingerprint(PIN));
    expect(fingerprint(Buffer.from(PIN))).toBe(fingerprint(PIN));
    expect(fingerprint(new Uint8Array(Buffer.from(PIN)))).toBe(fingerprint(PIN));
  });

  it('differs for different content', () => {
    expect(fingerprint('1234')).not.toBe(fingerprint('1235'));
    expect(fingerprint('')).not.toBe(fingerprint('\0'));
  });

  it('of parts equals that of their concatenation (callers frame the parts)', () => {
    expect(fingerprint(['12', Buffer.from('34')])).toBe(fingerprint(PIN));
    expect(fingerprint([])).toBe(fingerprint(''));
  });

  it('uses another key in another process, so it cannot be precomputed', () => {
    const other = fingerprintInOtherProcess(PIN);
    expect(other).toMatch(/^[0-9a-f]{16}$/);
    expect(other).not.toBe(fingerprint(PIN));
    expect(plainSha256(PIN).startsWith(other)).toBe(false);
  });
});
