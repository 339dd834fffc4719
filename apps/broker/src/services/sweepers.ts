// Timers that keep the queue moving and the tables bounded. Every statement
// is safe to run on all instances at once.
import type { Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { pruneRelayed } from "../store/ephemeral-relay.ts";
import {
  checkpointIfWalGrew,
  pruneAuditLog,
  pruneGonePresences,
  pruneHelloReplays,
  prunePendingSignals,
  pruneStoppedInstances,
  vacuumTables,
} from "../store/housekeeping.ts";
import {
  dropUndeliveredOfRevoked,
  expireDeliveries,
  markFullQueues,
  membersWithQueuedWork,
  pruneMessages,
  requeue,
} from "../store/queue/index.ts";
import { expireWorkingStatus } from "../store/status.ts";
import { queuedWork, type InstanceBus } from "./bus.ts";
import type { RecentEnds } from "./recent-ends.ts";
import type { InstanceLease } from "./instance-lease.ts";
import type { PresenceEvents } from "./presence-events.ts";
import { Periodic } from "./periodic.ts";
import { PruneWalk } from "./prune-walk.ts";
import type { PresenceLifecycle } from "./presence-lifecycle.ts";
import type { UnsentBudget } from "./unsent-budget.ts";
import type { QueuedWork } from "./queued-work.ts";
import { ADMISSION_TIMEOUT_FACTOR, type Clock, type Timing } from "./timing.ts";

const HOUR = 3600;
const DAY = 24 * HOUR;
const BATCH = 5000;
/**
 * How often the prune walks from the oldest message rather than from where
 * its last walk ended (or every settled retention, if shorter): a message
 * passed while still owed goes at most this long after it could.
 */
const PRUNE_FROM_THE_OLDEST_MS = 10 * 60 * 1000;
/**
 * Housekeeping intervals from one vacuum of the embedded database to the
 * next: a minute by default, autovacuum's own pause between rounds. Each
 * vacuum takes the broker's thread (13–14 ms for the rows of 6,000 messages
 * sent and acknowledged), and leaves the statements on the tables it changed
 * to be planned again.
 */
const VACUUM_INTERVALS = 6;
/**
 * Ephemeral sends relayed to an instance that never took them (its notice was
 * lost, or it ended) are deleted this long after: the relay table holds no
 * more than that, and a housekeeping interval, of sends.
 */
const RELAYED_EPHEMERAL_SECONDS = 5;

export interface SweeperDeps {
  db: Database;
  queuedWork: QueuedWork;
  bus: InstanceBus;
  lease: InstanceLease;
  lifecycle: PresenceLifecycle;
  unsentBudget: UnsentBudget;
  metrics: Metrics;
  log: Logger;
  timing: Timing;
  clock: Clock;
  events: PresenceEvents;
  /** Presences a hello, a reap here or a stop elsewhere ended lately, whose late leases the sweep puts back. */
  ended: RecentEnds;
  /** Requests whose hold on replies ended here lately: a reply a send held after that goes back too. */
  releasedHolds: RecentEnds;
  /** A member with this many deliveries queued is sent nothing new (store/queue/full-queues.ts). */
  maxQueuedPerMember: number;
  /** Pruning of in-memory state (rate limiter keys) along with the tables. */
  onHousekeeping: () => void;
}

export class Sweepers {
  private readonly periodic: Periodic;
  private readonly pruneWalk: PruneWalk;

  constructor(private readonly deps: SweeperDeps) {
    this.periodic = new Periodic((error, sweeper) => deps.log.warn({ err: error, sweeper }, "sweep failed"));
    const fromTheOldestEveryMs = Math.min(PRUNE_FROM_THE_OLDEST_MS, deps.timing.settledRetentionSeconds * 1000);
    // A clock that never steps back: a wall clock set back would hold off the walks from the oldest.
    this.pruneWalk = new PruneWalk(fromTheOldestEveryMs, () => performance.now());
  }

  start(): void {
    const { timing, queuedWork, db, lease, lifecycle } = this.deps;
    this.periodic.every("leases-and-status", timing.sweepIntervalMs, () => this.leasesAndStatus());
    this.periodic.every("catch-up", timing.catchUpIntervalMs, async () => {
      queuedWork.forMembers(await membersWithQueuedWork(db, lease.id));
      await lifecycle.endEnded();
      await lifecycle.finishDisconnects();
      // Older than a hello and its admission may take (after which its socket is closed).
      await lifecycle.endSocketless(Math.ceil(timing.helloTimeoutMs / 1000) * (1 + ADMISSION_TIMEOUT_FACTOR));
    });
    // Apart: a reap waiting on a row lock (held by an instance frozen in the
    // middle of a statement) must not hold up this instance's own renewals,
    // or the others would take it for dead too.
    const leaseTick = Math.floor((timing.instanceLeaseSeconds * 1000) / 3);
    this.periodic.every("instance-lease", leaseTick, () => lease.renew());
    this.periodic.every("reap", leaseTick, async () => queuedWork.forMembers(await lease.reap()));
    this.periodic.every("housekeeping", timing.housekeepingIntervalMs, () => this.housekeeping());
    // Postgres's autovacuum and checkpointer do this on their own; the embedded database has neither.
    if (db.kind === "embedded") this.periodic.every("vacuum", timing.housekeepingIntervalMs * VACUUM_INTERVALS, () => this.vacuum());
    // At once too: a fresh instance would report an empty queue until its first tick.
    this.periodic.every("queue-depth-and-full-queues", timing.housekeepingIntervalMs, () => this.queueDepthAndFullQueues(), { now: true });
  }

  /** No more sweeps; resolves when those under way are done. */
  async stop(): Promise<void> {
    await this.periodic.stop();
  }

  private async wake(members: string[]): Promise<void> {
    if (members.length === 0) return;
    this.deps.queuedWork.forMembers(members);
    await this.deps.bus.publish(this.deps.db, queuedWork(members, []));
  }

  private async leasesAndStatus(): Promise<void> {
    const { db, timing, metrics, lifecycle, unsentBudget, clock, events } = this.deps;
    lifecycle.endStalled(clock(), timing.stalledPresenceSeconds * 1000);
    const { backedUp, heldBytes } = unsentBudget.enforce();
    metrics.presencesCongested.set(backedUp);
    metrics.socketUnsentBytes.set(heldBytes);
    await this.wake(await requeue(db, { expiredLeases: { limit: 10_000 } }));
    await this.wake(await requeue(db, { presences: this.deps.ended.recent() }));
    await this.wake(await requeue(db, { releasedHolds: this.deps.releasedHolds.recent() }));
    const flipped = await expireWorkingStatus(db, timing.statusTtlSeconds).catch((error: unknown) => {
      // Still a run, and its statement rolled back: it flipped nothing.
      metrics.ttlSweeps.labels("false").inc();
      throw error;
    });
    metrics.ttlSweeps.labels(String(flipped.presenceIds.length > 0)).inc();
    await this.wake(flipped.memberIds);
    const changes = flipped.presenceIds.map((presenceId) => ({ presenceId, event: "status" as const }));
    await events.announce(db, changes);
    events.deliver(changes);
  }

  /** The queue's depth and its full queues, from one walk of the queue's index. */
  private async queueDepthAndFullQueues(): Promise<void> {
    const { db, metrics, log, maxQueuedPerMember } = this.deps;
    const { filled, drained, full, depth } = await markFullQueues(db, maxQueuedPerMember);
    metrics.queueDepth.set(depth);
    metrics.membersQueueFull.set(full);
    for (const memberId of filled) log.warn({ memberId, maxQueued: maxQueuedPerMember }, "member queue full");
    for (const memberId of drained) log.info({ memberId }, "member queue drained");
  }

  private async vacuum(): Promise<void> {
    const started = performance.now();
    const tables = await vacuumTables(this.deps.db);
    this.deps.log.debug({ tables, ms: Math.round(performance.now() - started) }, "tables vacuumed");
    // After the vacuum, whose own writes it then covers.
    const checkpointStarted = performance.now();
    if (await checkpointIfWalGrew(this.deps.db)) {
      this.deps.log.debug({ ms: Math.round(performance.now() - checkpointStarted) }, "checkpoint written");
    }
  }

  private async housekeeping(): Promise<void> {
    const { db, timing, metrics } = this.deps;
    metrics.messagesExpired.inc(await expireDeliveries(db, BATCH));
    // Sends in flight as a member was revoked take milliseconds, and what
    // they leased comes back to the queue within the longest lease (a
    // webhook attempt's is at most LEASE_SECONDS or 605 s, a reply wait's
    // 65 s): an hour past LEASE_SECONDS covers them with room to spare, and
    // restarts in between.
    const dropped = await dropUndeliveredOfRevoked(db, HOUR + timing.leaseSeconds);
    if (dropped > 0) this.deps.log.info({ deliveries: dropped }, "deliveries of revoked members dropped");
    const retention = {
      settledSeconds: timing.settledRetentionSeconds,
      historySeconds: timing.historyRetentionSeconds,
      historyMaxPerChannel: timing.historyMaxPerChannel,
    };
    await this.pruneWalk.tick((from) => pruneMessages(db, retention, BATCH, from));
    await pruneHelloReplays(db);
    // Only other instances write there: the embedded database's is always empty.
    if (this.deps.bus.crossInstance) await pruneRelayed(db.relaxed, RELAYED_EPHEMERAL_SECONDS);
    await prunePendingSignals(db);
    const presences = await pruneGonePresences(db, timing.endedPresenceRetentionSeconds, BATCH);
    await pruneStoppedInstances(db, DAY);
    const auditRows = await pruneAuditLog(db, timing.auditRetentionSeconds);
    if (presences + auditRows > 0) this.deps.log.debug({ presences, auditRows }, "ended presences and audit rows pruned");
    this.deps.onHousekeeping();
  }
}
