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

  /** Drops keys idle for two minutes, so the map does not grow forever. */
  prune(now = Date.now()): void {
    const minute = Math.floor(now / MINUTE_MS);
    for (const [key, w] of this.windows) if (w.minute < minute - 1) this.windows.delete(key);
  }
}
