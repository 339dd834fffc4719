// Timers that keep the queue moving and the tables bounded. Every statement
// is safe to run on all instances at once.
import type { Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import {
  pruneAuditLog,
  pruneGonePresences,
  pruneHelloReplays,
  prunePendingSignals,
  pruneStoppedInstances,
} from "../store/housekeeping.ts";
import {
  expireDeliveries,
  membersWithQueuedWork,
  pruneExpiredMessages,
  pruneSettledMessages,
  queueDepth,
  requeue,
} from "../store/queue/index.ts";
import { expireWorkingStatus } from "../store/status.ts";
import { queuedWork, type InstanceBus } from "./bus.ts";
import type { InstanceLease } from "./instance-lease.ts";
import type { PresenceEvents } from "./presence-events.ts";
import type { PresenceLifecycle } from "./presence-lifecycle.ts";
import type { QueuedWork } from "./queued-work.ts";
import type { Timing } from "./timing.ts";

const DAY = 86_400;
const BATCH = 5000;

export class Sweepers {
  private readonly timers: Timer[] = [];
  private readonly busy = new Set<string>();

  constructor(
    private readonly db: Database,
    private readonly queuedWork: QueuedWork,
    private readonly bus: InstanceBus,
    private readonly lease: InstanceLease,
    private readonly lifecycle: PresenceLifecycle,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly timing: Timing,
    private readonly events: PresenceEvents,
    /** Pruning of in-memory state (rate limiter keys) along with the tables. */
    private readonly onHousekeeping: () => void,
  ) {}

  start(): void {
    const t = this.timing;
    this.every("leases-and-status", t.sweepIntervalMs, () => this.leasesAndStatus());
    this.every("catch-up", t.catchUpIntervalMs, async () => {
      this.queuedWork.forMembers(await membersWithQueuedWork(this.db, this.lease.id));
      await this.lifecycle.endEnded();
    });
    this.every("instances", Math.floor((t.instanceLeaseSeconds * 1000) / 3), async () => {
      await this.lease.renew();
      this.queuedWork.forMembers(await this.lease.reap());
    });
    this.every("housekeeping", t.housekeepingIntervalMs, () => this.housekeeping());
  }

  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers.length = 0;
  }

  private every(name: string, ms: number, work: () => Promise<void>): void {
    this.timers.push(
      setInterval(() => {
        if (this.busy.has(name)) return;
        this.busy.add(name);
        work()
          .catch((error) => this.log.warn({ err: error, sweeper: name }, "sweep failed"))
          .finally(() => this.busy.delete(name));
      }, ms),
    );
  }

  private async wake(members: string[]): Promise<void> {
    if (members.length === 0) return;
    this.queuedWork.forMembers(members);
    await this.bus.publish(this.db, queuedWork(members, []));
  }

  private async leasesAndStatus(): Promise<void> {
    await this.wake(await requeue(this.db, { expiredLeases: { limit: 10_000 } }));
    this.metrics.ttlSweeps.inc();
    const flipped = await expireWorkingStatus(this.db, this.timing.statusTtlSeconds);
    await this.wake(flipped.memberIds);
    const changes = flipped.presenceIds.map((presenceId) => ({ presenceId, event: "status" as const }));
    await this.events.announce(this.db, changes);
    this.events.deliver(changes);
  }

  private async housekeeping(): Promise<void> {
    this.metrics.messagesExpired.inc(await expireDeliveries(this.db, BATCH));
    const retention = { settledSeconds: this.timing.settledRetentionSeconds, historySeconds: this.timing.historyRetentionSeconds };
    await pruneExpiredMessages(this.db, retention, BATCH);
    await pruneSettledMessages(this.db, retention, BATCH);
    await pruneHelloReplays(this.db);
    await prunePendingSignals(this.db);
    await pruneGonePresences(this.db, DAY);
    await pruneStoppedInstances(this.db, DAY);
    await pruneAuditLog(this.db, 30 * DAY);
    this.metrics.queueDepth.set(await queueDepth(this.db));
    this.onHousekeeping();
  }
}
