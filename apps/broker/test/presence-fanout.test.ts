// Presence events fanned out on one instance (services/presence-events.ts),
// against a real database: changes that come while a fan-out reads its rows
// wait together for one read, in order, however many come.
import { describe, expect, spyOn, test } from "bun:test";
import { waitUntil } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { createLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { PresenceEvents, type PresenceEventView } from "../src/services/presence-events.ts";
import * as store from "../src/store/presence-events.ts";
import { useScratchDatabase } from "./support/scratch-db.ts";

const scratch = useScratchDatabase("presence-fanout");

describe("PresenceEvents fan-out", () => {
  test("50 changes that come during a read are read together, and told in order", async () => {
    const log = createLogger("silent", {});
    const events = new PresenceEvents(scratch.db, new InstanceBus(scratch.db, log), "fanout-test", createMetrics(), log);
    const [mesh] = await scratch.db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('fanout', 'fanout') RETURNING id`);
    const told: PresenceEventView[] = [];
    (await events.subscribe("watcher", mesh!.id, (event) => told.push(event))).start();

    const presences: string[] = [];
    for (let i = 0; i < 50; i++) {
      const [member] = await scratch.db.rows<{ id: string }>(sql`
        INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${mesh!.id}, ${`k${i}`}, ${`m${i}`}) RETURNING id`);
      const [presence] = await scratch.db.rows<{ id: string }>(sql`
        INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
        VALUES (${mesh!.id}, ${member!.id}, 'fanout-test', 's', ${`m${i}`}) RETURNING id`);
      presences.push(presence!.id);
    }

    const read = store.presenceRows;
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let reads = 0;
    const spy = spyOn(store, "presenceRows").mockImplementation(async (executor, ids, meshes) => {
      if (++reads === 1) await held;
      return read(executor, ids, meshes);
    });
    try {
      for (const presenceId of presences) events.deliver([{ presenceId, event: "joined" }]);
      release();
      await waitUntil(() => told.length === 50 || undefined, 10_000, "50 joined events");
    } finally {
      spy.mockRestore();
    }
    expect(told.map((e) => e.presenceId)).toEqual(presences);
    expect(reads).toBe(2);
  });

  test("a joined read after its presence ended is not told (its left may have been told already)", async () => {
    const log = createLogger("silent", {});
    const events = new PresenceEvents(scratch.db, new InstanceBus(scratch.db, log), "fanout-test", createMetrics(), log);
    const [mesh] = await scratch.db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('late-joined', 'late') RETURNING id`);
    const [member] = await scratch.db.rows<{ id: string }>(sql`
      INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${mesh!.id}, 'late', 'late') RETURNING id`);
    const [presence] = await scratch.db.rows<{ id: string }>(sql`
      INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name, disconnected_at)
      VALUES (${mesh!.id}, ${member!.id}, 'elsewhere', 's', 'late', now()) RETURNING id`);
    const told: PresenceEventView[] = [];
    (await events.subscribe("watcher", mesh!.id, (event) => told.push(event))).start();
    // The other instance's news of it joining comes after it ended.
    events.deliver([{ presenceId: presence!.id, event: "joined" }]);
    // A live one after it: once that is told, the late news was read too.
    const [live] = await scratch.db.rows<{ id: string }>(sql`
      INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
      VALUES (${mesh!.id}, ${member!.id}, 'elsewhere', 's2', 'live') RETURNING id`);
    events.deliver([{ presenceId: live!.id, event: "joined" }]);
    await waitUntil(() => told.length > 0 || undefined, 10_000, "the live presence's joined");
    expect(told.map((e) => [e.presenceId, e.event])).toEqual([[live!.id, "joined"]]);
  });
});
