// Timers that keep the queue moving and the tables bounded. Every statement
// is safe to run on all instances at once.
import type { Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { membersWithQueuedWork, queueDepth, requeueExpiredLeases } from "../store/deliveries.ts";
import { expireWorkingStatus } from "../store/presences.ts";
import {
  pruneAuditLog,
  pruneDeliveredMessages,
  pruneExpiredMessages,
  pruneGonePresences,
  pruneHelloReplays,
  prunePendingSignals,
  pruneStoppedInstances,
} from "../store/sweeps.ts";
import type { DeliveryPump } from "./delivery.ts";
import type { InstanceService } from "./instance.ts";
import type { PresenceService } from "./presence.ts";
import { memberWake, type Wakeups } from "./wakeups.ts";

const DAY = 86_400;

export interface SweeperOptions {
  statusTtlSeconds: number;
  /** How long a fully acknowledged message is kept (retries within it stay idempotent). */
  deliveredRetentionSeconds: number;
  /** The longest a missed wake-up can delay a delivery. */
  catchUpIntervalMs: number;
  /** Lease expiry and the status TTL. */
  sweepIntervalMs: number;
  instanceRenewIntervalMs: number;
  housekeepingIntervalMs: number;
  onHousekeeping?: () => void;
}

export class Sweepers {
  private readonly timers: Timer[] = [];
  private readonly busy = new Set<string>();

  constructor(
    private readonly db: Database,
    private readonly pump: DeliveryPump,
    private readonly wakeups: Wakeups,
    private readonly instance: InstanceService,
    private readonly presence: PresenceService,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly options: SweeperOptions,
  ) {}

  start(): void {
    this.every("leases-and-status", this.options.sweepIntervalMs, () => this.leasesAndStatus());
    this.every("catch-up", this.options.catchUpIntervalMs, async () => {
      this.pump.wake(await membersWithQueuedWork(this.db, this.instance.id));
      await this.presence.closeEnded();
    });
    this.every("instances", this.options.instanceRenewIntervalMs, async () => {
      await this.instance.renew();
      this.pump.wake(await this.instance.reap());
    });
    this.every("housekeeping", this.options.housekeepingIntervalMs, () => this.housekeeping());
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
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
    this.pump.wake(members);
    await this.wakeups.publish(this.db, memberWake(members, []));
  }

  private async leasesAndStatus(): Promise<void> {
    await this.wake(await requeueExpiredLeases(this.db));
    this.metrics.ttlSweeps.inc();
    await this.wake(await expireWorkingStatus(this.db, this.options.statusTtlSeconds));
  }

  private async housekeeping(): Promise<void> {
    await pruneHelloReplays(this.db);
    await prunePendingSignals(this.db);
    await pruneExpiredMessages(this.db, 5000);
    await pruneDeliveredMessages(this.db, this.options.deliveredRetentionSeconds, 5000);
    await pruneGonePresences(this.db, DAY);
    await pruneStoppedInstances(this.db, DAY);
    await pruneAuditLog(this.db, 30 * DAY);
    this.metrics.queueDepth.set(await queueDepth(this.db));
    this.options.onHousekeeping?.();
  }
}
