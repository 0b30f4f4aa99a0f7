import { describe, expect, it } from 'vitest';
import { isSkError } from '../../src/errors.js';
import { formatOnChange, type OnChange, parseOnChange } from '../../src/on-change.js';

describe('parseOnChange', () => {
  it.each<[string, OnChange]>([
    ['none', { type: 'none' }],
    ['', { type: 'none' }],
    ['signal:HUP', { type: 'signal', signal: 'SIGHUP', process: undefined }],
    ['signal:sigusr1@nginx', { type: 'signal', signal: 'SIGUSR1', process: 'nginx' }],
    ['http:http://127.0.0.1:8080/-/reload', { type: 'http', url: 'http://127.0.0.1:8080/-/reload' }],
    ['exec:nginx -s  reload', { type: 'exec', command: ['nginx', '-s', 'reload'] }],
  ])('%j', (text, parsed) => {
    expect(parseOnChange(text, 'onChange')).toEqual(parsed);
  });

  it.each([
    ['signal:KILL', 'unsupported signal'],
    ['signal:HUP@bad name', 'bad process name'],
    ['http:not a url', 'absolute URL'],
    ['http:ftp://x/y', 'http or https'],
    ['exec:   ', 'empty command'],
    ['reload', 'is not signal:'],
  ])('refuses %j (%s) with SK_ERR_ON_CHANGE_INVALID naming the field', (text, why) => {
    try {
      parseOnChange(text, 'sidekey.io/on-change');
      expect.unreachable();
    } catch (e) {
      expect(isSkError(e) && e.code).toBe('SK_ERR_ON_CHANGE_INVALID');
      expect((e as Error).message).toContain('sidekey.io/on-change');
      expect((e as Error).message).toContain(why);
    }
  });

  it('a refused http URL is shown without its credentials or query', () => {
    const canary = 'SKCANARY-7f3c9e2a-do-not-print';
    for (const text of [`http:ftp://app:${canary}@x/y`, `http:ftp://x/y?token=${canary}`]) {
      try {
        parseOnChange(text, 'sidekey.io/on-change');
        expect.unreachable();
      } catch (e) {
        expect(isSkError(e) && e.code).toBe('SK_ERR_ON_CHANGE_INVALID');
        expect((e as Error).message).toContain('http or https');
        expect((e as Error).message.includes('SKCANARY')).toBe(false);
      }
    }
  });

  it.each(['none', 'signal:HUP', 'signal:USR2@app', 'http:https://x.test/reload?now=1', 'exec:kill -HUP 1'])(
    'format ∘ parse round-trips %j',
    (text) => {
      expect(formatOnChange(parseOnChange(text, 'w'))).toBe(text);
    },
  );
});
