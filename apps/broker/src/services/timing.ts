// The clock and the intervals of the broker's machinery, as parameters: the
// entry builds them from the configuration, tests shorten them.
export type Clock = () => number;

/**
 * A hello read in time has this many times HELLO_TIMEOUT_MS to be admitted.
 * A presence row older than the two together, that no socket of its
 * instance holds, was admitted for a socket that is gone (sweepers.ts).
 */
export const ADMISSION_TIMEOUT_FACTOR = 2;

export const systemClock: Clock = () => Date.now();

export interface Timing {
  /** A push not acknowledged within this is pushed again. */
  leaseSeconds: number;
  helloTimeoutMs: number;
  /** How long a hook signal that found no presence waits for one. */
  pendingSignalSeconds: number;
  /** Broker instances renew a lease row; past it they are reaped. */
  instanceLeaseSeconds: number;
  /** The longest a missed cross-instance wake-up delays queued work. */
  catchUpIntervalMs: number;
  /** Lease expiry and the status TTL. */
  sweepIntervalMs: number;
  housekeepingIntervalMs: number;
  /** How long a settled message is kept, so a retried send stays idempotent. */
  settledRetentionSeconds: number;
  /** How long a channel message is kept for history, acknowledged or not. */
  historyRetentionSeconds: number;
  /** Unset: no bound. Else a channel's settled messages beyond its newest this many go after the settled retention. */
  historyMaxPerChannel: number | undefined;
  /** How long an ended presence's row is kept (its readers: config.ts). */
  endedPresenceRetentionSeconds: number;
  /** How long an audit row is kept. */
  auditRetentionSeconds: number;
  statusTtlSeconds: number;
  freshWindowMs: number;
  /** A presence whose socket stays backed up this long is closed (its leases requeue). */
  stalledPresenceSeconds: number;
  /** A webhook request without a 2xx answer within this failed (timeout). */
  webhookTimeoutMs: number;
  /** Backoff after a failed webhook request: from this, doubling per failure, up to the max. */
  webhookBackoffMinMs: number;
  webhookBackoffMaxMs: number;
}

/**
 * What `work` settles to, or `late()` once `ms` pass first. The work is not
 * stopped; a failure after the deadline is held by the race, not thrown.
 */
export async function settleWithin<T, L>(work: Promise<T>, ms: number, late: () => L): Promise<T | L> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<L>((resolve) => {
    timer = setTimeout(() => resolve(late()), Math.max(0, ms));
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
