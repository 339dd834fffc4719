// A per-key limit of N events a minute, as a sliding window estimated from
// this minute's and the previous minute's counts. Per instance: with several
// instances a key may get up to N on each.
const MINUTE_MS = 60_000;

interface Window {
  minute: number;
  current: number;
  previous: number;
}

/** The window's counts as they stand at `now`: rolled into now's minute without changing it. */
function rolled(w: Window, now: number): Window {
  const minute = Math.floor(now / MINUTE_MS);
  if (w.minute === minute) return w;
  return { minute, current: 0, previous: w.minute === minute - 1 ? w.current : 0 };
}

/** The sliding-window estimate of events in the minute before `now`. */
function estimate(w: Window, now: number): number {
  const elapsed = (now % MINUTE_MS) / MINUTE_MS;
  return w.previous * (1 - elapsed) + w.current;
}

export class RateLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly perMinute: number) {}

  /** Counts the event and says whether it is within the limit. */
  allow(key: string, now = Date.now()): boolean {
    const w = rolled(this.windows.get(key) ?? { minute: 0, current: 0, previous: 0 }, now);
    this.windows.set(key, w);
    if (estimate(w, now) >= this.perMinute) return false;
    w.current++;
    return true;
  }

  /** How long until allow(key) would succeed, with no events meanwhile: 0 when it would now. */
  retryAfterMs(key: string, now = Date.now()): number {
    const known = this.windows.get(key);
    if (!known) return 0;
    const w = rolled(known, now);
    if (estimate(w, now) < this.perMinute) return 0;
    const into = now % MINUTE_MS;
    // Where the estimate falls to the limit: within this minute as the
    // previous minute's weight fades, or, when this minute's own count
    // reaches it, in the next one as this minute's weight fades in turn.
    const wait =
      w.current >= this.perMinute
        ? MINUTE_MS - into + MINUTE_MS * (1 - this.perMinute / w.current)
        : MINUTE_MS * (1 - (this.perMinute - w.current) / w.previous) - into;
    // The estimate must fall below the limit, not to it; the last step is taken in whole milliseconds.
    let ms = Math.max(0, Math.floor(wait));
    while (estimate(rolled(w, now + ms), now + ms) >= this.perMinute) ms++;
    return ms;
  }

  /** Drops keys idle for two minutes, so the map does not grow forever. */
  prune(now = Date.now()): void {
    const minute = Math.floor(now / MINUTE_MS);
    for (const [key, w] of this.windows) if (w.minute < minute - 1) this.windows.delete(key);
  }
}
