// Holders of leases that ended lately, for the sweep to look after what a
// send leased them late. A send whose statement began before such an end
// committed may lease to the holder after the end put its leases back:
// - presences a hello or a reap on this instance ended (the sessions a hello
//   replaced, wherever they were held, and a reaped instance's), and those
//   another instance's graceful stop ended (its bus notice): when the
//   presence's instance is gone, no one pushes that lease, and it would wait
//   out LEASE_SECONDS while the member's later messages went ahead of it;
// - requests whose last wait released their hold on replies: a reply held
//   after the release would wait out the hold (the wait + 5 s).
// The sweep puts such leases back while the ends are recent (sweepers.ts).
import type { Clock } from "./timing.ts";

/** How long after an end its holder's leases are looked for again: longer than a send statement takes. */
const LOOKED_AFTER_MS = 5000;
/** Past this many, the oldest ends are forgotten: a reap of a large instance must not grow the sweep without bound. */
const MAX_KEPT = 20_000;

export class RecentEnds {
  /** Holder id (a presence's, a request's) → when it ended; in the order of the ends (a Map keeps insertion order). */
  private readonly ended = new Map<string, number>();

  constructor(private readonly clock: Clock) {}

  add(holderIds: readonly string[]): void {
    const now = this.clock();
    for (const id of holderIds) {
      this.ended.delete(id);
      this.ended.set(id, now);
    }
    for (const id of this.ended.keys()) {
      if (this.ended.size <= MAX_KEPT) break;
      this.ended.delete(id);
    }
  }

  /** The holders ended within the last few seconds; older ends are forgotten. */
  recent(): string[] {
    const now = this.clock();
    for (const [id, at] of this.ended) {
      if (now - at <= LOOKED_AFTER_MS) break;
      this.ended.delete(id);
    }
    return [...this.ended.keys()];
  }
}
