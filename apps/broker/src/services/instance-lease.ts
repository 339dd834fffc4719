// This instance's lease row, and the reaping of instances that stopped
// renewing theirs: their presences end and their leased deliveries return to
// the queue, so no ghost peer outlives a killed instance by more than a lease.
import type { Database } from "@switchboard/db";
import { hostname } from "node:os";
import type { Logger } from "../log.ts";
import {
  markAllInstancesStopped,
  markInstanceStopped,
  orphanedPresenceIds,
  registerInstance,
  renewInstance,
  takeExpiredInstances,
  terminateSessionsOf,
} from "../store/instances.ts";
import { disconnectPresences, livePresenceIdsOfInstance } from "../store/presences.ts";
import { queuedWork, type InstanceBus } from "./bus.ts";
import type { RecentEnds } from "./recent-ends.ts";
import { leftEvents, type PresenceEvents } from "./presence-events.ts";
import { retryTransient } from "./retry.ts";
import type { Clock } from "./timing.ts";

export class InstanceLease {
  private lastRenewedAt: number;
  private reapAfter = 0;
  /** Set once stop() began: a renew after it must not make the instance live again. */
  private stopping = false;
  /** The renew under way, if any: stop() waits for it, so its write cannot land after the stop's. */
  private renewing: Promise<void> | null = null;

  constructor(
    private readonly db: Database,
    private readonly bus: InstanceBus,
    private readonly log: Logger,
    readonly id: string,
    private readonly options: { leaseSeconds: number; clock: Clock; ended: RecentEnds; releasedHolds: RecentEnds },
    private readonly events: PresenceEvents,
    /** The others reaped this instance: the presences of its sockets are gone. */
    private readonly onLeaseLost: () => void,
  ) {
    this.lastRenewedAt = options.clock();
  }

  async register(): Promise<void> {
    // One process owns an embedded directory: whatever else is marked live
    // was left by a previous run that did not stop cleanly.
    const alone = this.db.kind === "embedded";
    if (alone) await markAllInstancesStopped(this.db);
    await registerInstance(this.db, this.id, hostname(), process.pid, this.options.leaseSeconds);
    this.lastRenewedAt = this.options.clock();
    if (alone) {
      await this.reap();
      return;
    }
    // On a shared server a lapsed lease may be an outage the others are
    // coming back from (this start may be its end): they get one lease to
    // renew before this instance ends anyone.
    this.reapAfter = this.lastRenewedAt + this.options.leaseSeconds * 1000;
  }

  async renew(): Promise<void> {
    const renewing = this.renewOnce();
    this.renewing = renewing;
    try {
      await renewing;
    } finally {
      if (this.renewing === renewing) this.renewing = null;
    }
  }

  private async renewOnce(): Promise<void> {
    if (this.stopping) return;
    const renewed = await renewInstance(this.db, this.id, this.options.leaseSeconds);
    const now = this.options.clock();
    if (now - this.lastRenewedAt > this.options.leaseSeconds * 1000) {
      // Cut off from the database (or frozen) past our own lease: after a
      // database outage every instance was, so give the others one lease to
      // renew before reaping them.
      this.reapAfter = now + this.options.leaseSeconds * 1000;
    }
    this.lastRenewedAt = now;
    if (renewed || this.stopping) return;
    // Reaped while alive: nothing routes to its sockets any more. Live again
    // first, so the peers can come back here, then send them away to do so.
    this.log.warn({ instanceId: this.id }, "instance lease lost; closing its sockets");
    await registerInstance(this.db, this.id, hostname(), process.pid, this.options.leaseSeconds);
    this.onLeaseLost();
  }

  /** Ends the presences of instances that are gone; returns the members that lost a presence. */
  async reap(): Promise<string[]> {
    const now = this.options.clock();
    // Not renewed for a whole lease (cut off, or frozen): the others may have
    // been too, and the renew that ends it gives them a lease first.
    if (now < this.reapAfter || now - this.lastRenewedAt > this.options.leaseSeconds * 1000) return [];
    const { members, left, expired } = await retryTransient(() =>
      this.db.transaction(async (tx) => {
        const expired = await takeExpiredInstances(tx, this.id);
        const orphans = await orphanedPresenceIds(tx, this.id);
        const members = await disconnectPresences(tx, orphans);
        if (expired.length > 0 || orphans.length > 0) {
          this.log.info({ instances: expired, presences: orphans.length }, "reaped stopped instances");
        }
        if (members.length > 0) await this.bus.publish(tx, queuedWork(members, []));
        const left = leftEvents(orphans);
        await this.events.announce(tx, left);
        return { members, left, expired };
      }),
    );
    this.events.deliver(left);
    // Committed ended: their leases are looked for again (recent-ends.ts).
    this.options.ended.add(left.map((c) => c.presenceId));
    if (expired.length > 0) await this.endSessionsOf(expired);
    return members;
  }

  // A reaped instance may only be frozen (SIGSTOP, a paused VM), its
  // sessions open: its listener, no longer read, holds back Postgres's
  // notification queue until every NOTIFY fails ("too many notifications"),
  // and a statement of it under way keeps its locks. Awake, it finds its
  // lease lost and opens new sessions. Its presences are already reaped: a
  // failure here is only logged.
  private async endSessionsOf(instances: string[]): Promise<void> {
    if (this.db.kind !== "postgres") return;
    try {
      const ended = await terminateSessionsOf(this.db, instances);
      if (ended > 0) this.log.info({ instances, sessions: ended }, "ended the database sessions of reaped instances");
    } catch (error) {
      this.log.warn({ err: error, instances }, "could not end the database sessions of reaped instances");
    }
  }

  /** Graceful stop: only this instance's presences end. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.renewing?.catch(() => {});
    await retryTransient(() =>
      this.db.transaction(async (tx) => {
        const mine = await livePresenceIdsOfInstance(tx, this.id);
        const members = await disconnectPresences(tx, mine);
        await markInstanceStopped(tx, this.id);
        if (members.length > 0) await this.bus.publish(tx, queuedWork(members, []));
        // A send elsewhere that read them live before this commit may lease
        // to them after it; this instance is gone by then, so the others look.
        // So with the requests whose holds on replies its waits released.
        const released = this.options.releasedHolds.recent();
        if (mine.length > 0 || released.length > 0) await this.bus.publish(tx, { stopped: mine, stoppedHolds: released });
        await this.events.announce(tx, leftEvents(mine));
      }),
    );
  }
}
