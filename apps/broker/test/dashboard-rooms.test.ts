// The dashboard's rooms (store/dashboard.ts): a channel's members are those
// routing would deliver to, as the mesh's own count beside it says; the
// busiest are listed, found without a walk of every channel membership.
import { expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { meshSummaries, rooms } from "../src/store/dashboard.ts";
import { planOf, rowsReadFrom } from "./support/plans.ts";
import { useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();

test("a revoked member no longer counts among its rooms' members", async () => {
  const db = scratch.db;
  const [mesh] = await db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('rooms', 'rooms') RETURNING id`);
  const members = await db.rows<{ id: string }>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name)
    SELECT ${mesh!.id}::uuid, 'key-' || g, 'member ' || g FROM generate_series(1, 2) g RETURNING id`);
  await db.rows(sql`
    INSERT INTO channel_members (mesh_id, channel, member_id)
    SELECT ${mesh!.id}::uuid, '#room', id FROM members WHERE mesh_id = ${mesh!.id}::uuid`);
  await db.rows(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    VALUES (${mesh!.id}::uuid, ${members[0]!.id}::uuid, 'rooms-test', 'session', 'member 1')`);
  await db.rows(sql`UPDATE members SET revoked_at = now() WHERE id = ${members[1]!.id}::uuid`);

  expect(await rooms(db, 100)).toEqual({ rooms: [{ meshId: mesh!.id, meshSlug: "rooms", channel: "#room", members: 1, connections: 1 }], more: false });
  expect((await meshSummaries(db)).find((m) => m.slug === "rooms")).toMatchObject({ members: 1 });
});

test("the busiest rooms are listed, connected ones first, and a walk of every membership is not what finds them", async () => {
  const db = scratch.db;
  await db.rows(sql`DELETE FROM channel_members`);
  await db.rows(sql`DELETE FROM presences`);
  // 2,000 meshes of three members, each member in 10 channels: 20,000 rooms, 60,000 memberships.
  await db.rows(sql`INSERT INTO meshes (slug, name) SELECT 'many-' || g, 'many' FROM generate_series(1, 2000) g`);
  await db.rows(sql`
    INSERT INTO members (mesh_id, pubkey, display_name)
    SELECT m.id, m.slug || '-key-' || k, 'member ' || k FROM meshes m, generate_series(1, 3) k WHERE m.slug LIKE 'many-%'`);
  await db.rows(sql`
    INSERT INTO channel_members (mesh_id, channel, member_id)
    SELECT mb.mesh_id, '#c' || c, mb.id FROM members mb JOIN meshes m ON m.id = mb.mesh_id, generate_series(1, 10) c WHERE m.slug LIKE 'many-%'`);
  // Live: two members of many-7 (both in its ten rooms), one of many-9.
  await db.rows(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    SELECT mb.mesh_id, mb.id, 'rooms-test', 'session-' || mb.pubkey, mb.display_name FROM members mb
    WHERE mb.pubkey IN ('many-7-key-1', 'many-7-key-2', 'many-9-key-1')`);
  await db.rows(sql`ANALYZE`);

  const shown = await rooms(db, 100);
  expect(shown.more).toBe(true);
  expect(shown.rooms).toHaveLength(100);
  const busiest = shown.rooms.slice(0, 20);
  expect(busiest.slice(0, 10).every((r) => r.meshSlug === "many-7" && r.connections === 2 && r.members === 3)).toBe(true);
  expect(busiest.slice(10).every((r) => r.meshSlug === "many-9" && r.connections === 1)).toBe(true);
  expect(shown.rooms.slice(20).every((r) => r.connections === 0 && r.members === 3)).toBe(true);
  expect(new Set(shown.rooms.map((r) => `${r.meshSlug} ${r.channel}`)).size).toBe(100);

  const plan = await planOf(scratch.backend.databaseUrl ?? db, (recorder) => rooms(recorder, 100), { generic: true, analyze: true });
  // The live presences' memberships, about a hundred idle rooms' worth, and each listed room's members: not 60,000.
  expect(rowsReadFrom(plan, "channel_members c")).toBeLessThan(2000);
});
