// Presences a hello or a reap on this instance ended lately: the sessions a
// hello replaced, wherever they were held, and a reaped instance's; and
// those another instance's graceful stop ended (its bus notice). A send
// whose statement began before such an end committed may lease to the
// presence after the end put its leases back; when the presence's instance
// is gone, no one pushes that lease: it would wait out LEASE_SECONDS while
// the member's later messages went ahead of it. The sweep puts such leases
// back while the ends are recent (sweepers.ts).
import type { Clock } from "./timing.ts";

/** How long after an end its presence's leases are looked for again: longer than a send statement takes. */
const LOOKED_AFTER_MS = 5000;
/** Past this many, the oldest ends are forgotten: a reap of a large instance must not grow the sweep without bound. */
const MAX_KEPT = 20_000;

export class EndedPresences {
  /** Presence id → when it ended; in the order of the ends (a Map keeps insertion order). */
  private readonly ended = new Map<string, number>();

  constructor(private readonly clock: Clock) {}

  add(presenceIds: readonly string[]): void {
    const now = this.clock();
    for (const id of presenceIds) {
      this.ended.delete(id);
      this.ended.set(id, now);
    }
    for (const id of this.ended.keys()) {
      if (this.ended.size <= MAX_KEPT) break;
      this.ended.delete(id);
    }
  }

  /** The presences ended within the last few seconds; older ends are forgotten. */
  recent(): string[] {
    const now = this.clock();
    for (const [id, at] of this.ended) {
      if (now - at <= LOOKED_AFTER_MS) break;
      this.ended.delete(id);
    }
    return [...this.ended.keys()];
  }
}
