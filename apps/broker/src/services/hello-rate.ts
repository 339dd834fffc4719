// How many hellos one member may have admitted in a minute. A key that
// reconnects in a loop, each hello replacing its own session, writes a
// presence and its audit rows each time and tells every presence subscriber
// of its mesh a `left` and a `joined`: bounded per member, not per socket or
// address, since a member may use many of both. Only admitted hellos count,
// so a replayed or otherwise refused hello spends nothing of the member's.
import { RateLimiter } from "./rate-limit.ts";
import type { Clock } from "./timing.ts";

export class HelloRate {
  private readonly limiter: RateLimiter;

  constructor(
    readonly perMinute: number,
    private readonly clock: Clock,
  ) {
    this.limiter = new RateLimiter(perMinute);
  }

  /** For one batch's hellos, by member: whether each may be admitted, the batch's earlier ones counted. */
  within(memberIds: readonly string[]): boolean[] {
    const now = this.clock();
    const inBatch = new Map<string, number>();
    return memberIds.map((id) => {
      const n = (inBatch.get(id) ?? 0) + 1;
      if (!this.limiter.fits(id, now, n)) return false;
      inBatch.set(id, n);
      return true;
    });
  }

  /** Hellos of these members were admitted (their transaction committed). */
  admitted(memberIds: readonly string[]): void {
    const now = this.clock();
    for (const id of memberIds) this.limiter.record(id, now);
  }

  prune(): void {
    this.limiter.prune(this.clock());
  }
}
