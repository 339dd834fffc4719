// Deliveries a send statement of another instance leased to presences here,
// which its notice names (services/bus.ts): kept in the order the notices
// came, and read with their messages when the pump gets to them — no write,
// no commit. The pump reads them at the start of its next round, before it
// claims for anything a later notice announced, so a sender's later message
// that went through the queue never goes out before its earlier one that was
// leased by its send.
import type { Database } from "@switchboard/db";
import type { Logger } from "../../log.ts";
import { readLeases, type LeasedDelivery } from "../../store/queue/index.ts";
import { retryTransient } from "../retry.ts";

/** Deliveries read in one statement. */
const MAX_PER_READ = 500;

export class LeasedElsewhere {
  /** Named by notices, in the order they came. */
  private readonly named: Array<{ presenceId: string; seq: number }> = [];

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  /** A notice's deliveries, as [presence id, delivery id]. */
  take(pushes: Array<[presenceId: string, seq: number]>): void {
    for (const [presenceId, seq] of pushes) this.named.push({ presenceId, seq });
  }

  get pending(): boolean {
    return this.named.length > 0;
  }

  /**
   * The oldest named deliveries that are still leased to the presence named
   * (one that ended gave its leases back to the queue). On a failure they
   * are left to their leases, which run out.
   */
  async read(): Promise<LeasedDelivery[]> {
    const named = this.named.splice(0, MAX_PER_READ);
    if (named.length === 0) return [];
    try {
      return await retryTransient(() => readLeases(this.db.relaxed, named));
    } catch (error) {
      this.log.warn({ err: error, deliveries: named.length }, "reading deliveries leased by another instance failed; their leases will run out");
      return [];
    }
  }
}
