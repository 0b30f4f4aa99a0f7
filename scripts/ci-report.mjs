// CI report: (1) fails if the canary secret appears anywhere in what the test tiers printed (the
// whole console output, not only the CLI processes the helpers record), (2) prints the plain closing
// line `N passed, N failed` summed over vitest's JSON reports.
// Usage: node scripts/ci-report.mjs <log file> <vitest json>...
import { readFileSync } from 'node:fs';

const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';
const [log, ...reports] = process.argv.slice(2);
let passed = 0;
let failed = 0;
let skipped = 0;
for (const f of reports) {
  const r = JSON.parse(readFileSync(f, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + (r.numTodoTests ?? 0);
}
const printed = readFileSync(log, 'utf8');
const leaks = printed.split('\n').filter((l) => l.includes(CANARY)).length;
if (leaks > 0) {
  console.log(`canary: the canary secret appears on ${leaks} line(s) of the test output (${log})`);
  failed += 1;
} else {
  console.log(`canary: not found in ${printed.length} characters of test output`);
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || skipped > 0 ? 1 : 0);
