// Work on a timer: each piece by name, skipping a tick while its last run is
// still under way (a slow database must not pile runs up).
export class Periodic {
  private readonly timers: Timer[] = [];
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly onError: (error: unknown, name: string) => void) {}

  /** Runs work every ms, and at once with `now` (a gauge a fresh instance should not report empty). */
  every(name: string, ms: number, work: () => Promise<void>, { now = false } = {}): void {
    const tick = () => {
      if (this.running.has(name)) return;
      const run = work()
        .catch((error: unknown) => this.onError(error, name))
        .finally(() => this.running.delete(name));
      this.running.set(name, run);
    };
    this.timers.push(setInterval(tick, ms));
    if (now) tick();
  }

  /** No more runs; resolves when those under way are done. */
  stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers.length = 0;
    return Promise.all(this.running.values()).then(() => undefined);
  }
}
