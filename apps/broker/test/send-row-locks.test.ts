// A send statement locks no row it does not write. With foreign keys from
// messages and deliveries, every inserted row's check took a key-share lock
// on its parent: sends of several instances into one mesh each wrote a
// multixact for the mesh's row, and every delivery locked its own message.
import { expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { enqueueSends } from "../src/store/queue/index.ts";
import { newMessage, useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
const holders = { instanceId: "send-row-locks", unavailable: [], leaseSeconds: 30, notify: true };
const one = async <T>(query: ReturnType<typeof sql>) => (await scratch.db.rows<T>(query))[0]!;

/** xmax of the mesh's row and of its members' rows: it changes when a transaction locks one. */
const lockMarks = (meshId: string) =>
  scratch.db.rows<{ id: string; xmax: string }>(sql`
    SELECT id, xmax::text FROM meshes WHERE id = ${meshId}
    UNION ALL
    SELECT id, xmax::text FROM members WHERE mesh_id = ${meshId}
    ORDER BY id`);

test("a send to a member connected here and to one offline leaves the rows of its mesh and members, and its own messages, unlocked", async () => {
  const mesh = await one<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('row-locks', 'row-locks') RETURNING id`);
  const member = (name: string) =>
    one<{ id: string; pubkey: string }>(sql`
      INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${mesh.id}, ${crypto.randomUUID()}, ${name}) RETURNING id, pubkey`);
  const sender = await member("sender");
  const connected = await member("connected");
  const offline = await member("offline");
  await scratch.db.rows(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    VALUES (${mesh.id}, ${connected.id}, ${holders.instanceId}, 'row-locks', 'connected')`);
  const before = await lockMarks(mesh.id);

  const written = await enqueueSends(
    scratch.db,
    [newMessage(mesh.id, sender.id, connected.pubkey), newMessage(mesh.id, sender.id, offline.pubkey)],
    holders,
  );

  expect(written.map((w) => w.inserted)).toEqual([true, true]);
  const states = await scratch.db.rows<{ state: string }>(sql`
    SELECT d.state FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE m.sender_member_id = ${sender.id} ORDER BY d.state`);
  expect(states.map((s) => s.state)).toEqual(["leased", "queued"]);
  expect(await lockMarks(mesh.id)).toEqual(before);
  const messages = await scratch.db.rows<{ xmax: string }>(sql`SELECT xmax::text FROM messages WHERE sender_member_id = ${sender.id}`);
  expect(messages.map((m) => m.xmax)).toEqual(["0", "0"]);
});
