// A per-key limit of N events a minute, as a sliding window estimated from
// this minute's and the previous minute's counts. Per instance: with several
// instances a key may get up to N on each.
const MINUTE_MS = 60_000;

interface Window {
  minute: number;
  current: number;
  previous: number;
}

export class RateLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly perMinute: number) {}

  /** Counts the event and says whether it is within the limit. */
  allow(key: string, now = Date.now()): boolean {
    const minute = Math.floor(now / MINUTE_MS);
    let w = this.windows.get(key);
    if (!w) this.windows.set(key, (w = { minute, current: 0, previous: 0 }));
    if (w.minute !== minute) {
      w.previous = w.minute === minute - 1 ? w.current : 0;
      w.current = 0;
      w.minute = minute;
    }
    const elapsed = (now % MINUTE_MS) / MINUTE_MS;
    const estimate = w.previous * (1 - elapsed) + w.current;
    if (estimate >= this.perMinute) return false;
    w.current++;
    return true;
  }

  /** How long until allow(key) may succeed again: 0 when it would now. */
  retryAfterMs(key: string, now = Date.now()): number {
    const w = this.windows.get(key);
    const minute = Math.floor(now / MINUTE_MS);
    if (!w || w.minute < minute - 1) return 0;
    const into = now % MINUTE_MS;
    // The counts as they stand at `now`, in the minute they belong to.
    const [previous, current] = w.minute === minute ? [w.previous, w.current] : [w.current, 0];
    if (previous * (1 - into / MINUTE_MS) + current < this.perMinute) return 0;
    // This minute's count alone reaches the limit: wait into the next minute,
    // until this minute's weight has faded enough.
    if (current >= this.perMinute) return MINUTE_MS - into + Math.ceil(MINUTE_MS * (1 - this.perMinute / current));
    // The previous minute's weight fades as this one passes.
    return Math.max(0, Math.ceil(MINUTE_MS * (1 - (this.perMinute - current) / previous)) - into);
  }

  /** Drops keys idle for two minutes, so the map does not grow forever. */
  prune(now = Date.now()): void {
    const minute = Math.floor(now / MINUTE_MS);
    for (const [key, w] of this.windows) if (w.minute < minute - 1) this.windows.delete(key);
  }
}
