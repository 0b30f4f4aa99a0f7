import { canaryGlobalSetup } from './canary.ts';

/** globalSetup for a test tier: record all CLI output and fail the run if the canary was printed. */
export default function setup(): () => void {
  return canaryGlobalSetup();
}
