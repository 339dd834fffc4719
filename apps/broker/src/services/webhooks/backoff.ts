// When a failing webhook is tried again: exponential backoff with full
// jitter. The ceiling starts at minMs after the first failure and doubles
// with each further one up to maxMs; the delay is uniform below it, so
// endpoints failing together are not all retried at once.
export interface BackoffBounds {
  minMs: number;
  maxMs: number;
}

/** The delay after the `failures`-th consecutive failure (1, 2, …). */
export function retryDelayMs(failures: number, bounds: BackoffBounds, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(failures, 1) - 1, 30);
  const ceiling = Math.min(bounds.maxMs, bounds.minMs * 2 ** exponent);
  return Math.floor(random() * ceiling);
}

/**
 * The delay after a failure: the backoff's, or what the receiver asked for
 * (Retry-After) when that is longer, but never past maxMs: a receiver cannot
 * push its retries out beyond what the schedule allows.
 */
export function failureDelayMs(failures: number, bounds: BackoffBounds, askedMs: number | undefined, random: () => number = Math.random): number {
  return Math.max(retryDelayMs(failures, bounds, random), Math.min(askedMs ?? 0, bounds.maxMs));
}
