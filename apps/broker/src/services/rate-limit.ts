// A per-key limit of N events a minute, as a sliding window estimated from
// this minute's and the previous minute's counts. Per instance: with several
// instances a key may get up to N on each.
//
// The map is bounded whatever callers send: keys are kept as 64-bit hashes
// (a 4 KB cwd costs no more than a uuid), and past maxKeys the oldest key is
// dropped. Limits that must not be dodged by varying a key (a hook's pid and
// cwd) are paired with a coarser limit on a key the caller cannot choose.
const MINUTE_MS = 60_000;

interface Window {
  minute: number;
  current: number;
  previous: number;
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
    if (this.estimate(w, now) + cost > this.perMinute) return false;
    w.current += cost;
    return true;
  }

  /** Whether the key has used up its limit, without counting anything. */
  exhausted(key: string, now: number): boolean {
    const w = this.windows.get(Bun.hash(key));
    return w !== undefined && this.estimate(this.rolled(w, now), now) + 1 > this.perMinute;
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
    const minute = Math.floor(now / MINUTE_MS);
    if (w.minute !== minute) {
      w.previous = w.minute === minute - 1 ? w.current : 0;
      w.current = 0;
      w.minute = minute;
    }
    return w;
  }

  private estimate(w: Window, now: number): number {
    const elapsed = (now % MINUTE_MS) / MINUTE_MS;
    return w.previous * (1 - elapsed) + w.current;
  }

  // The key inserted first goes (a Map keeps insertion order): no scan, so a
  // flood of new keys costs each request O(1). Stale keys go in prune().
  private makeRoom(): void {
    const first = this.windows.keys().next();
    if (!first.done) this.windows.delete(first.value);
  }
}
