// Deliveries a send statement of another instance leased to presences here,
// which its notice names (services/bus.ts): they are read with their
// messages and pushed without a claim — no write, no commit. The pump hands
// them out as a send's own leases, and hands back at once what a presence
// cannot take now or is no longer here to take. Notices are read one batch
// after another, so the deliveries of later sends never go out before those
// of earlier ones.
import type { Database } from "@switchboard/db";
import type { Logger } from "../../log.ts";
import { readLeases, type LeasedDelivery } from "../../store/queue/index.ts";
import { retryTransient } from "../retry.ts";

/** Deliveries read in one statement. */
const MAX_PER_READ = 500;

export class LeasedElsewhere {
  /** Named by notices, in the order they came. */
  private readonly named: Array<{ presenceId: string; seq: number }> = [];
  private reading: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly db: Database,
    private readonly pushes: { handLeased(leased: LeasedDelivery[]): Promise<void> },
    private readonly log: Logger,
  ) {}

  /** A notice's deliveries, as [presence id, delivery id]. */
  take(pushes: Array<[presenceId: string, seq: number]>): void {
    if (this.stopped) return;
    for (const [presenceId, seq] of pushes) this.named.push({ presenceId, seq });
    this.reading ??= this.read();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.reading;
  }

  private async read(): Promise<void> {
    try {
      while (this.named.length > 0 && !this.stopped) {
        const named = this.named.splice(0, MAX_PER_READ);
        let leased: LeasedDelivery[];
        try {
          // Those no longer leased to the presence named (it ended, and they
          // went back to the queue) are not read.
          leased = await retryTransient(() => readLeases(this.db.relaxed, named));
        } catch (error) {
          this.log.warn({ err: error, deliveries: named.length }, "reading deliveries leased by another instance failed; their leases will run out");
          continue;
        }
        await this.pushes.handLeased(leased);
      }
    } finally {
      this.reading = null;
    }
  }
}
