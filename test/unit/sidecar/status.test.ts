import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { formatAge, formatStatusTable, readStatus, statusDir } from '../../../sidecar/status.ts';
import type { StatusDocument } from '../../../src/writer.ts';

const now = Date.parse('2026-11-26T05:20:00.000Z');
const doc: StatusDocument = {
  apiVersion: 'sidekey.io/v1',
  ready: true,
  updatedAt: '2026-11-26T05:19:58.000Z',
  secrets: {
    'db-password': { file: 'db-password', version: '7', fetchedAt: '2026-11-26T05:15:00.000Z' },
    'db-creds': {
      file: 'db.env',
      version: 'database/creds/app/AbCd',
      fetchedAt: '2026-11-26T03:00:00.000Z',
      lastError: {
        code: 'SK_ERR_BACKEND_UNAVAILABLE',
        message: 'x: connection refused',
        at: '2026-11-26T05:19:58.000Z',
      },
      stale: true,
    },
    pending: { file: 'p' },
  },
};

describe('sidekey status', () => {
  test('ages are short and human', () => {
    expect([0, 42_000, 192_000, 3_600_000, 7_500_000, 90_000_000, 3 * 86_400_000].map(formatAge)).toEqual([
      '0s',
      '42s',
      '3m12s',
      '1h',
      '2h5m',
      '1d1h',
      '3d',
    ]);
    expect(formatAge(undefined)).toBe('-');
  });

  test('the table: one row per secret with file, version, age and the last error code (never the message)', () => {
    expect(formatStatusTable(doc, '/run/sidekey', now)).toBe(
      [
        '/run/sidekey: ready, 3 secret(s), status written 2s ago',
        'SECRET       FILE         VERSION                  AGE    LAST ERROR',
        'db-password  db-password  7                        5m     -',
        'db-creds     db.env       database/creds/app/AbCd  2h20m  SK_ERR_BACKEND_UNAVAILABLE, stale',
        'pending      p            -                        -      -',
        '',
      ].join('\n'),
    );
    expect(formatStatusTable(doc, '/d', now)).not.toContain('connection refused');
  });

  test('a LEASE column when a secret has a lease: the time left, or expired', () => {
    const leased: StatusDocument = {
      ...doc,
      secrets: {
        creds: {
          file: 'db.env',
          version: 'lease-1',
          fetchedAt: '2026-11-26T05:19:00.000Z',
          lease: { ttlSeconds: 3600, expiresAt: '2026-11-26T05:24:10.000Z', renewable: true },
        },
        old: {
          file: 'old',
          version: 'lease-0',
          fetchedAt: '2026-11-26T04:00:00.000Z',
          lease: { ttlSeconds: 60, expiresAt: '2026-11-26T04:01:00.000Z', renewable: false },
        },
        plain: { file: 'p', version: '3', fetchedAt: '2026-11-26T05:19:30.000Z' },
      },
    };
    expect(formatStatusTable(leased, '/run/sidekey', now).split('\n').slice(1, 5)).toEqual([
      'SECRET  FILE    VERSION  AGE    LEASE    LAST ERROR',
      'creds   db.env  lease-1  1m     4m10s    -',
      'old     old     lease-0  1h20m  expired  -',
      'plain   p       3        30s    -        -',
    ]);
  });

  test('a WAITING column while a backend call runs: how long it has been waiting', () => {
    const stuck: StatusDocument = {
      ...doc,
      secrets: {
        db: {
          file: 'db',
          version: '7',
          fetchedAt: '2026-11-26T05:15:00.000Z',
          inFlight: {
            call: 'vault fetch of vault:secret/data/app#password',
            since: '2026-11-26T05:19:48.000Z',
          },
        },
        api: { file: 'api', version: '3', fetchedAt: '2026-11-26T05:19:30.000Z' },
      },
    };
    expect(formatStatusTable(stuck, '/run/sidekey', now).split('\n').slice(1, 4)).toEqual([
      'SECRET  FILE  VERSION  AGE  WAITING  LAST ERROR',
      'db      db    7        5m   12s      -',
      'api     api   3        30s  -        -',
    ]);
  });

  test('the directory: --dir, else the spec output.dir, else /run/sidekey; a missing or foreign file is named', async () => {
    expect(await statusDir({ dir: '/x/y' }, {})).toBe('/x/y');
    expect(await statusDir({}, {})).toBe('/run/sidekey');
    expect(
      await statusDir({}, { SIDEKEY_SPEC: JSON.stringify({ output: { dir: '/run/secrets' }, secrets: {} }) }),
    ).toBe('/run/secrets');
    await expect(statusDir({}, { SIDEKEY_SPEC: '{nope' })).rejects.toMatchObject({
      code: 'SK_ERR_SPEC_PARSE',
    });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-status-'));
    try {
      await expect(readStatus(dir)).rejects.toMatchObject({ code: 'SK_ERR_SOURCE_NOT_FOUND' });
      writeFileSync(path.join(dir, '.sidekey-status.json'), '{"a":1}');
      await expect(readStatus(dir)).rejects.toMatchObject({
        code: 'SK_ERR_SOURCE_UNREADABLE',
        message: expect.stringContaining('not a sidekey.io/v1 status document'),
      });
      writeFileSync(path.join(dir, '.sidekey-status.json'), JSON.stringify(doc));
      expect(await readStatus(dir)).toEqual(doc);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
