import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(c: Buffer | string, _e, cb) {
      chunks.push(c.toString());
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('createLogger', () => {
  it('writes the level as a string, in children too, and still censors value-bearing fields', () => {
    const { stream, lines } = capture();
    const log = createLogger({ destination: stream, level: 'debug', name: 'sidekey-test' });
    log.debug('d');
    log.info({ password: 'hunter2' }, 'i');
    log.child({ provider: 'vault' }).warn('w');
    log.error('e');
    const out = lines();
    expect(out.map((l) => l.level)).toEqual(['debug', 'info', 'warn', 'error']);
    expect(out[1]!.password).toBe('[redacted]');
    expect(out[2]!.provider).toBe('vault');
    expect(out[0]!.name).toBe('sidekey-test');
  });

  it('keeps level filtering working with string levels', () => {
    const { stream, lines } = capture();
    const log = createLogger({ destination: stream, level: 'warn' });
    log.info('hidden');
    log.warn('shown');
    expect(lines().map((l) => l.msg)).toEqual(['shown']);
  });
});
