// This instance's lease row, against a real database: a renew still under
// way when the instance stops must not make it live again (the stop waits
// for it, and writes last).
import { describe, expect, spyOn, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { RecentEnds } from "../src/services/recent-ends.ts";
import { InstanceLease } from "../src/services/instance-lease.ts";
import { PresenceEvents } from "../src/services/presence-events.ts";
import * as instances from "../src/store/instances.ts";
import { useScratchDatabase } from "./support/scratch-db.ts";

const scratch = useScratchDatabase("instance-lease");

describe("InstanceLease", () => {
  test("a renew that returns after the instance stopped leaves it stopped, its sockets untouched", async () => {
    const log = createLogger("silent", {});
    const bus = new InstanceBus(scratch.db, log);
    const events = new PresenceEvents(scratch.db, bus, "lease-test", createMetrics(), log);
    let lost = 0;
    const lease = new InstanceLease(scratch.db, bus, log, "lease-test", { leaseSeconds: 15, clock: Date.now, ended: new RecentEnds(Date.now), releasedHolds: new RecentEnds(Date.now) }, events, () => lost++);
    await lease.register();

    const renew = instances.renewInstance;
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    // The renew's statement waits until the stop is written, as a sweep racing the shutdown would.
    const spy = spyOn(instances, "renewInstance").mockImplementation(async (executor, id, seconds) => {
      await held;
      return renew(executor, id, seconds);
    });
    try {
      const renewing = lease.renew();
      const stopping = lease.stop();
      // Long enough for a stop that does not wait for the renew to finish first.
      await Promise.race([stopping, Bun.sleep(300)]);
      release();
      await Promise.all([renewing, stopping]);
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
    const [row] = await scratch.db.rows<{ stopped: boolean }>(sql`SELECT stopped_at IS NOT NULL AS stopped FROM broker_instances WHERE id = 'lease-test'`);
    expect(row?.stopped).toBe(true);
    expect(lost).toBe(0);
  });

  test("a reap that runs after the reaper's own lease ran out takes no instance, not even the reaper", async () => {
    const log = createLogger("silent", {});
    const bus = new InstanceBus(scratch.db, log);
    const events = new PresenceEvents(scratch.db, bus, "reaper", createMetrics(), log);
    const lease = new InstanceLease(scratch.db, bus, log, "reaper", { leaseSeconds: 15, clock: Date.now, ended: new RecentEnds(Date.now), releasedHolds: new RecentEnds(Date.now) }, events, () => {});
    await lease.register();
    await instances.registerInstance(scratch.db, "gone", "host", 1, 15);
    // Both leases out by the database's clock while the reaper renewed in time by its own:
    // its reap statement was held up (a stalled connection) past its lease.
    const expireBoth = sql`UPDATE broker_instances SET lease_expires_at = now() - interval '1 second' WHERE id IN ('reaper', 'gone')`;
    const stopped = async () =>
      (await scratch.db.rows<{ id: string }>(sql`SELECT id FROM broker_instances WHERE id IN ('reaper', 'gone') AND stopped_at IS NOT NULL ORDER BY id`)).map((r) => r.id);
    await scratch.db.rows(expireBoth);
    await lease.reap();
    expect(await stopped()).toEqual([]);
    // Renewed, it reaps the other.
    await lease.renew();
    await lease.reap();
    expect(await stopped()).toEqual(["gone"]);
  });
});
