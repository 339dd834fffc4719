// This instance's lease row, and the reaping of instances that stopped
// renewing theirs: their presences end and their leased deliveries return to
// the queue, so no ghost peer outlives a killed instance by more than a lease.
import type { Database } from "@switchboard/db";
import { hostname } from "node:os";
import type { Logger } from "../log.ts";
import { markInstanceStopped, orphanedPresenceIds, registerInstance, renewInstance, takeExpiredInstances } from "../store/instances.ts";
import { disconnectPresences, livePresenceIdsOfInstance } from "../store/presences.ts";
import { sql } from "drizzle-orm";
import { retryTransient } from "./batcher.ts";
import { memberWake, type Wakeups } from "./wakeups.ts";

export const INSTANCE_LEASE_SECONDS = 15;

export class InstanceService {
  constructor(
    private readonly db: Database,
    private readonly wakeups: Wakeups,
    private readonly log: Logger,
    readonly id: string,
  ) {}

  async register(): Promise<void> {
    if (this.db.kind === "embedded") {
      // One process owns an embedded directory: whatever else is marked live
      // was left by a previous run that did not stop cleanly.
      await this.db.rows(sql`UPDATE broker_instances SET stopped_at = now() WHERE stopped_at IS NULL`);
    }
    await registerInstance(this.db, this.id, hostname(), process.pid, INSTANCE_LEASE_SECONDS);
    await this.reap();
  }

  renew(): Promise<void> {
    return renewInstance(this.db, this.id, INSTANCE_LEASE_SECONDS);
  }

  /** Ends the presences of instances that are gone; returns the members that lost a presence. */
  async reap(): Promise<string[]> {
    return retryTransient(() =>
      this.db.transaction(async (tx) => {
        const expired = await takeExpiredInstances(tx);
        const orphans = await orphanedPresenceIds(tx, this.id);
        const members = await disconnectPresences(tx, orphans);
        if (expired.length > 0 || orphans.length > 0) {
          this.log.info({ instances: expired, presences: orphans.length }, "reaped stopped instances");
        }
        if (members.length > 0) await this.wakeups.publish(tx, memberWake(members, []));
        return members;
      }),
    );
  }

  /** Graceful stop: only this instance's presences end. */
  async stop(): Promise<void> {
    await retryTransient(() =>
      this.db.transaction(async (tx) => {
        const mine = await livePresenceIdsOfInstance(tx, this.id);
        const members = await disconnectPresences(tx, mine);
        await markInstanceStopped(tx, this.id);
        if (members.length > 0) await this.wakeups.publish(tx, memberWake(members, []));
      }),
    );
  }
}
