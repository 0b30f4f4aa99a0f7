import path from 'node:path';
import { SkError } from './errors.js';

/** The writer's status file in the output directory; no secret file may take its name. */
export const STATUS_FILE_NAME = '.sidekey-status.json';

/**
 * Validate a user-given relative file path (secret file names, `sidekey.io/file-<name>`).
 * Refused: empty, absolute, any `..` or `.` segment, backslashes, NUL, newlines and other control
 * characters, a segment over 255 bytes (UTF-8), a leading `..data`-style name
 * (reserved for the writer), the status file's name, and anything `path.posix.normalize` would change (`a//b`, `a/./b`, `a/`).
 */
export function validateRelativePath(p: string, where: string): string {
  const fail = (why: string): never => {
    throw new SkError('SK_ERR_PATH_INVALID', `${where}: "${p}" ${why}`, { where });
  };
  if (typeof p !== 'string' || p === '') return fail('is empty');
  if (p.includes('\0')) return fail('contains a NUL byte');
  // A newline would split SIDEKEY_CHANGED_FILES (one name a line) and log lines; no control character
  // belongs in a file name.
  if (p.includes('\n')) return fail('contains a newline');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\x00-\x1f\x7f]/.test(p)) return fail('contains a control character');
  if (p.includes('\\')) return fail('contains a backslash');
  if (path.posix.isAbsolute(p)) return fail('is absolute; give a path relative to the mount directory');
  const segments = p.split('/');
  if (segments.some((s) => s === '..')) return fail('contains ".."');
  if (segments.some((s) => s === '.' || s === '')) return fail('is not normalised (empty or "." segment)');
  if (path.posix.normalize(p) !== p) return fail('is not normalised');
  if (segments[0]!.startsWith('..')) return fail('starts with "..", which is reserved for the atomic writer');
  if (segments[0] === STATUS_FILE_NAME)
    return fail(`is "${STATUS_FILE_NAME}", which is reserved for the status file`);
  // NAME_MAX counts bytes: 128 × "é" is 256 bytes and would fail only at write time.
  if (segments.some((s) => Buffer.byteLength(s) > 255))
    return fail('has a segment longer than 255 bytes (UTF-8)');
  return p;
}

/** Parse an octal file mode: `"0440"`, `"440"`, `"0o440"` or a number (taken as given, e.g. 0o440 = 288). */
export function parseFileMode(m: string | number, where: string): number {
  if (typeof m === 'number') {
    if (Number.isInteger(m) && m >= 0 && m <= 0o777) return m;
    throw new SkError('SK_ERR_MODE_INVALID', `${where}: ${m} is not a file mode between 0 and 0777`, {
      where,
    });
  }
  const s = m.trim().replace(/^0o/i, '');
  if (!/^[0-7]{3,4}$/.test(s)) {
    throw new SkError('SK_ERR_MODE_INVALID', `${where}: "${m}" is not an octal file mode such as 0440`, {
      where,
    });
  }
  const n = Number.parseInt(s, 8);
  if (n > 0o777) {
    throw new SkError(
      'SK_ERR_MODE_INVALID',
      `${where}: "${m}" sets setuid/setgid/sticky bits, which are refused`,
      {
        where,
      },
    );
  }
  return n;
}
