// The dashboard's rooms (store/dashboard.ts): a channel's members are those
// routing would deliver to, as the mesh's own count beside it says.
import { expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { meshSummaries, rooms } from "../src/store/dashboard.ts";
import { useScratchDatabase } from "./support/scratch-db.ts";

const scratch = useScratchDatabase("dashboard-rooms");

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

  expect(await rooms(db)).toEqual([{ meshId: mesh!.id, meshSlug: "rooms", channel: "#room", members: 1, connections: 1 }]);
  expect((await meshSummaries(db)).find((m) => m.slug === "rooms")).toMatchObject({ members: 1 });
});
