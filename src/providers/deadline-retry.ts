import type { Options } from 'p-retry';

/** Backoff bounds of a backend's retries, in ms. */
export interface RetryTiming {
  readonly minTimeoutMs: number;
  readonly maxTimeoutMs: number;
}

/**
 * The p-retry options backends share: exponential backoff with jitter, the call's AbortSignal, and
 * no retry that could not finish before the call's deadline (the call then fails now with its real
 * cause, instead of the engine ending it as a timeout). The longest wait before retry n is
 * min(max, min·2^(n−1)), doubled by the randomisation; `minAttemptMs` is left for the attempt itself.
 */
export function deadlineRetryOptions(
  timing: RetryTiming,
  signal: AbortSignal,
  deadline: number,
  minAttemptMs: number,
): Options {
  return {
    minTimeout: timing.minTimeoutMs,
    maxTimeout: timing.maxTimeoutMs,
    factor: 2,
    randomize: true,
    signal,
    shouldRetry: ({ retriesConsumed }) => {
      const wait = 2 * Math.min(timing.maxTimeoutMs, timing.minTimeoutMs * 2 ** retriesConsumed);
      return Date.now() + wait + minAttemptMs < deadline;
    },
  };
}
