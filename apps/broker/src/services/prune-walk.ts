// Where an instance's prune of messages starts (store/queue/prune.ts). A
// tick's walk reads every message past its retention that it passes, and an
// offline member's backlog is owed for its TTL (seven days by default): read
// again on every tick, it cost every instance about 2 ms per 1,000 such
// messages every HOUSEKEEPING_INTERVAL_MS. So a tick starts where the last
// one ended, and only now and then does a walk start from the oldest message,
// to find what was owed when passed and has settled or expired since. The
// place is this instance's alone and lost with it: a fresh instance walks
// from the oldest first, as every instance did on every tick before.
import { FROM_THE_OLDEST, type Pruned, type PruneFrom } from "../store/queue/index.ts";
import type { Clock } from "./timing.ts";

export class PruneWalk {
  private from: PruneFrom = FROM_THE_OLDEST;
  private lastFromTheOldest = Number.NEGATIVE_INFINITY;

  /** `fromTheOldestEveryMs`: how long a message passed while owed may stay once it could go. */
  constructor(
    private readonly fromTheOldestEveryMs: number,
    private readonly clock: Clock,
  ) {}

  /** Runs one prune from where the last ended (or from the oldest, when due); returns how many messages went. */
  async tick(prune: (from: PruneFrom) => Promise<Pruned>): Promise<number> {
    const now = this.clock();
    const fromTheOldest = now - this.lastFromTheOldest >= this.fromTheOldestEveryMs;
    const pruned = await prune(fromTheOldest ? FROM_THE_OLDEST : this.from);
    if (fromTheOldest) this.lastFromTheOldest = now;
    this.from = pruned.next;
    return pruned.removed;
  }
}
