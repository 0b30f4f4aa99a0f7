import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

/** Fixtures and golden files for `scan` / `migrate`. */
export const FIXTURES = fileURLToPath(new URL('../../fixtures/migrate/', import.meta.url));
export const GOLDEN = path.join(FIXTURES, 'golden');

/** The fixture secret value; it must never appear in anything scan/migrate prints about a value. */
export const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';

export const FIXTURE_FILES = [
  'api.yaml',
  'workloads.yaml',
  'literals.yaml',
  'already-migrated.yaml',
  'list.json',
];

export function readFixture(name: string): string {
  return readFileSync(path.join(FIXTURES, name), 'utf8');
}

/**
 * Compare `actual` with test/fixtures/migrate/golden/<name>; with UPDATE_GOLDEN=1 (re)write the file
 * instead. A missing golden file fails the test (it is never created silently).
 */
export function expectGolden(name: string, actual: string): void {
  const file = path.join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  if (!existsSync(file)) throw new Error(`golden file ${file} is missing; run with UPDATE_GOLDEN=1`);
  expect(actual).toBe(readFileSync(file, 'utf8'));
}
