// A per-key limit of N events a minute, as a sliding window estimated from
// this minute's and the previous minute's counts. Per instance: with several
// instances a key may get up to N on each.
//
// The map is bounded whatever callers send: keys are kept as 64-bit hashes
// (a 4 KB cwd costs no more than a uuid), and past maxKeys the oldest key is
// dropped. Limits that must not be dodged by varying a key (a hook's pid and
// cwd) are paired with a coarser limit on a key the caller cannot choose.
const MINUTE_MS = 60_000;

/** Counts of this minute and the one before, from which a sliding minute is estimated. */
export interface Window {
  minute: number;
  current: number;
  previous: number;
}

export const emptyWindow = (): Window => ({ minute: -1, current: 0, previous: 0 });

/** The window's counts as they would stand at `now`, without changing it. */
export function windowAt(w: Window, now: number): Window {
  const minute = Math.floor(now / MINUTE_MS);
  if (w.minute === minute) return w;
  return { minute, current: 0, previous: w.minute === minute - 1 ? w.current : 0 };
}

/** Events in the sliding minute ending at `now`: this minute's, and the previous minute's share of what is left of it. */
export function estimate(w: Window, now: number): number {
  const elapsed = (now % MINUTE_MS) / MINUTE_MS;
  return w.previous * (1 - elapsed) + w.current;
}

export class RateLimiter {
  private readonly windows = new Map<bigint | number, Window>();

  constructor(
    private readonly perMinute: number,
    private readonly maxKeys = 100_000,
  ) {}

  /** Counts `cost` events and says whether they fit within the limit (nothing is counted when they do not). */
  allow(key: string, now: number, cost = 1): boolean {
    const w = this.window(key, now);
    if (estimate(w, now) + cost > this.perMinute) return false;
    w.current += cost;
    return true;
  }

  /** Whether `cost` more events would fit within the limit now, without counting anything. */
  fits(key: string, now: number, cost = 1): boolean {
    const w = this.windows.get(Bun.hash(key));
    return w === undefined || estimate(this.rolled(w, now), now) + cost <= this.perMinute;
  }

  /** Counts `cost` events that have happened, whether or not they fit (see fits). */
  record(key: string, now: number, cost = 1): void {
    this.window(key, now).current += cost;
  }

  /** The events counted in the sliding minute ending now. */
  used(key: string, now: number): number {
    const w = this.windows.get(Bun.hash(key));
    return w === undefined ? 0 : estimate(this.rolled(w, now), now);
  }

  /** Whether the key has used up its limit, without counting anything. */
  exhausted(key: string, now: number): boolean {
    return !this.fits(key, now);
  }

  /** How long until allow(key, …) would count one more event, with none counted meanwhile: 0 when it would now. */
  retryAfterMs(key: string, now: number): number {
    const known = this.windows.get(Bun.hash(key));
    if (!known) return 0;
    const fits = (t: number) => estimate(windowAt(known, t), t) + 1 <= this.perMinute;
    if (fits(now)) return 0;
    const w = windowAt(known, now);
    const into = now % MINUTE_MS;
    const room = this.perMinute - 1;
    // Where the estimate falls to `room`: within this minute as the previous
    // minute's weight fades, or, when this minute's own count is past it, in
    // the next one as this minute's weight fades in turn.
    const wait =
      w.current > room
        ? MINUTE_MS - into + MINUTE_MS * (1 - room / w.current)
        : MINUTE_MS * (1 - (room - w.current) / w.previous) - into;
    // The last step in whole milliseconds, so rounding never answers too early.
    let ms = Math.max(0, Math.floor(wait));
    while (!fits(now + ms)) ms++;
    return ms;
  }

  /** Drops keys idle for two minutes, so the map does not grow forever. */
  prune(now: number): void {
    const minute = Math.floor(now / MINUTE_MS);
    for (const [key, w] of this.windows) if (w.minute < minute - 1) this.windows.delete(key);
  }

  get size(): number {
    return this.windows.size;
  }

  private window(key: string, now: number): Window {
    const id = Bun.hash(key);
    let w = this.windows.get(id);
    if (!w) {
      if (this.windows.size >= this.maxKeys) this.makeRoom();
      w = { minute: Math.floor(now / MINUTE_MS), current: 0, previous: 0 };
      this.windows.set(id, w);
    }
    return this.rolled(w, now);
  }

  private rolled(w: Window, now: number): Window {
    return Object.assign(w, windowAt(w, now));
  }

  // The key inserted first goes (a Map keeps insertion order): no scan, so a
  // flood of new keys costs each request O(1). Stale keys go in prune().
  private makeRoom(): void {
    const first = this.windows.keys().next();
    if (!first.done) this.windows.delete(first.value);
  }
}
