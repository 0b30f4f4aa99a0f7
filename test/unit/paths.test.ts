import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSkError } from '../../src/errors.js';
import { parseFileMode, validateRelativePath } from '../../src/paths.js';

describe('validateRelativePath', () => {
  it.each(['db', 'db/password', 'tls.crt', 'a/b/c.json', '.hidden', 'a..b', 'x/..y'])('accepts %j', (p) => {
    expect(validateRelativePath(p, 'f')).toBe(p);
  });

  it.each([
    ['', 'is empty'],
    ['/etc/passwd', 'is absolute'],
    ['../x', 'contains ".."'],
    ['a/../../x', 'contains ".."'],
    ['a/./b', 'not normalised'],
    ['a//b', 'not normalised'],
    ['a/', 'not normalised'],
    ['.', 'not normalised'],
    ['a\\..\\b', 'backslash'],
    ['a\0b', 'NUL'],
    ['..data', 'reserved for the atomic writer'],
    ['..2026_01_01/x', 'reserved'],
    [`${'x'.repeat(256)}`, 'longer than 255 bytes'],
  ])('refuses %j (%s) with SK_ERR_PATH_INVALID naming the field', (p, why) => {
    try {
      validateRelativePath(p, 'secrets.db.file');
      expect.unreachable();
    } catch (e) {
      expect(isSkError(e) && e.code).toBe('SK_ERR_PATH_INVALID');
      expect((e as Error).message).toContain('secrets.db.file');
      expect((e as Error).message).toContain(why);
    }
  });

  it('never accepts a path that escapes the base directory after path.resolve (property)', () => {
    const base = '/run/sidekey';
    const piece = fc.constantFrom('a', 'b', '.', '..', '/', '\\', '\0', ' ', '..data', '~', '%2e');
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.array(piece, { maxLength: 8 }).map((a) => a.join('')),
        ),
        (p) => {
          let ok: string;
          try {
            ok = validateRelativePath(p, 'f');
          } catch (e) {
            expect(isSkError(e) && e.code).toBe('SK_ERR_PATH_INVALID');
            return;
          }
          const abs = path.resolve(base, ok);
          expect(abs.startsWith(`${base}/`)).toBe(true);
          expect(path.relative(base, abs)).toBe(ok);
          expect(ok.split('/')[0]!.startsWith('..')).toBe(false);
        },
      ),
      { numRuns: 5000 },
    );
  });
});

describe('parseFileMode', () => {
  it.each([
    ['0440', 0o440],
    ['440', 0o440],
    ['0o600', 0o600],
    [' 0644 ', 0o644],
    [0o400, 0o400],
    [0, 0],
  ] as const)('%j → %o', (m, n) => {
    expect(parseFileMode(m, 'mode')).toBe(n);
  });

  it.each(['0448', 'rw-r--r--', '', '04440', '4755', '1777', -1, 0o1000, 1.5])('refuses %j', (m) => {
    try {
      parseFileMode(m as string, 'secrets.db.mode');
      expect.unreachable();
    } catch (e) {
      expect(isSkError(e) && e.code).toBe('SK_ERR_MODE_INVALID');
      expect((e as Error).message).toContain('secrets.db.mode');
    }
  });
});
