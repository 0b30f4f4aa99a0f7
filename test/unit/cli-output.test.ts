import { describe, expect, it } from 'vitest';
import { choicesOf } from '../../cli/completion.ts';
import { deprecatedAlias, outputFormat, painter, structured, useColor } from '../../src/cli-output.ts';
import { isSkError } from '../../src/errors.ts';

describe('colour decision', () => {
  const tty = { isTTY: true };
  const pipe = { isTTY: false };
  it('a terminal gets colour; a pipe, NO_COLOR (non-empty) and TERM=dumb do not; FORCE_COLOR forces it', () => {
    expect(useColor(tty, {})).toBe(true);
    expect(useColor(pipe, {})).toBe(false);
    expect(useColor(tty, { NO_COLOR: '1' })).toBe(false);
    expect(useColor(tty, { NO_COLOR: '' })).toBe(true);
    expect(useColor(tty, { TERM: 'dumb' })).toBe(false);
    expect(useColor(pipe, { FORCE_COLOR: '1' })).toBe(true);
    expect(useColor(pipe, { FORCE_COLOR: '0' })).toBe(false);
    expect(useColor(tty, { FORCE_COLOR: '1', NO_COLOR: '1' })).toBe(false);
  });
  it('the painter is the identity when off', () => {
    expect(painter(false)('red', 'high')).toBe('high');
    expect(painter(true)('red', 'high')).toBe('\x1b[31mhigh\x1b[39m');
  });
});

describe('-o', () => {
  it('accepts only the listed formats, with a usage error naming -o', () => {
    expect(outputFormat(undefined, ['table', 'json'] as const, 'table')).toBe('table');
    expect(outputFormat('json', ['table', 'json'] as const, 'table')).toBe('json');
    try {
      outputFormat('xml', ['table', 'json'] as const, 'table');
      expect.unreachable();
    } catch (e) {
      expect(isSkError(e) && e.code).toBe('SK_ERR_CLI_USAGE');
      expect((e as Error).message).toBe('-o xml: use table, json');
    }
  });
  it('json and yaml carry the same document', async () => {
    const doc = { a: [1, 'two', { three: null }], b: 'multi\nline' };
    expect(JSON.parse(await structured(doc, 'json'))).toEqual(doc);
    const { parse } = await import('yaml');
    expect(parse(await structured(doc, 'yaml'))).toEqual(doc);
  });
  it('a deprecated alias still works, with one warning; the new flag wins', () => {
    const warnings: string[] = [];
    const warn = (l: string) => void warnings.push(l);
    expect(deprecatedAlias(undefined, 'old', '-o', '--output-dir', warn)).toBe('old');
    expect(deprecatedAlias('new', 'old', '-o', '--output-dir', warn)).toBe('new');
    expect(deprecatedAlias('new', undefined, '-o', '--output-dir', warn)).toBe('new');
    expect(warnings).toEqual([
      'warn: -o is deprecated here and will be removed: use --output-dir\n',
      'warn: -o is deprecated here and will be removed: use --output-dir\n',
    ]);
  });
});

describe('completion choices from option descriptions', () => {
  it('reads "a, b or c" at the start or after the last colon', () => {
    expect(choicesOf('table, json or yaml')).toEqual(['table', 'json', 'yaml']);
    expect(choicesOf('exit 3 if a finding is at this confidence or higher: high, medium or low')).toEqual([
      'high',
      'medium',
      'low',
    ]);
    expect(choicesOf('yaml or json; json prints one object, or a v1 List of several')).toEqual([
      'yaml',
      'json',
    ]);
    expect(choicesOf('spec file')).toEqual([]);
    expect(choicesOf('output directory (default: output.dir of the spec, else a private temp dir)')).toEqual(
      [],
    );
  });
});
