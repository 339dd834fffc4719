// A send to many recipients (`*`, a tag, a busy channel) is written by one
// statement whose work grows with its recipients, not with their square:
// each recipient's presence on the sending instance is looked up once. The
// statement's lookup of the presences was planned (under the pool's generic
// plan) into the join of its deliveries, and ran again for every recipient.
// And a channel's recipients are found through the channel, not by testing
// every member of every mesh against it.
import { beforeAll, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { enqueueSends, type NewMessage } from "../src/store/queue/index.ts";
import { COUNT, planOf } from "./support/plans.ts";
import { newMessage, useBackendDatabase } from "./support/scratch-db.ts";

const INSTANCE = "enqueue-fanout";
const MEMBERS = 200;

const scratch = useBackendDatabase();
let meshId = "";
let senderId = "";

beforeAll(async () => {
  const [mesh] = await scratch.db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('fanout', 'fanout') RETURNING id`);
  meshId = mesh!.id;
  const members = await scratch.db.rows<{ id: string }>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name)
    SELECT ${meshId}::uuid, md5(g::text) || md5(g::text || 'k'), 'm' || g FROM generate_series(1, ${MEMBERS}) g
    RETURNING id`);
  senderId = members[0]!.id;
  // Every member has a live presence on this instance, idle: each delivery may be leased to it directly.
  await scratch.db.rows(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    SELECT ${meshId}::uuid, id, ${INSTANCE}, 's', display_name FROM members WHERE mesh_id = ${meshId}::uuid`);
  // A channel of three in this mesh.
  await scratch.db.rows(sql`
    INSERT INTO channel_members (mesh_id, channel, member_id)
    SELECT mesh_id, '#room', id FROM members WHERE mesh_id = ${meshId}::uuid ORDER BY display_name LIMIT 3`);
  await scratch.db.rows(sql`ANALYZE`);
});

/**
 * A larger deployment around the mesh, for the channel tests (they run after
 * the broadcast's): with its statistics, Postgres plans the broadcast's
 * lookup once per recipient even when it is inlined, and that test could not fail.
 */
async function aLargerDeployment(): Promise<void> {
  await scratch.db.rows(sql`
    WITH other AS (INSERT INTO meshes (slug, name) VALUES ('around', 'around') RETURNING id),
    everyone AS (
      INSERT INTO members (mesh_id, pubkey, display_name)
      SELECT other.id, md5(g::text || 'o') || md5(g::text || 'p'), 'o' || g FROM other, generate_series(1, 5000) g
      RETURNING id, mesh_id)
    INSERT INTO channel_members (mesh_id, channel, member_id) SELECT mesh_id, '#c' || (random() * 50)::int, id FROM everyone`);
  await scratch.db.rows(sql`ANALYZE`);
}
const broadcast = (targetSpec = "*"): NewMessage => newMessage(meshId, senderId, targetSpec);
const holders = { instanceId: INSTANCE, unavailable: [], leaseSeconds: 30, notify: false };

test("a broadcast is written with a delivery leased to each other member's presence", async () => {
  const [written] = await enqueueSends(scratch.db, [broadcast()], holders);
  expect(JSON.parse(written!.recipients)).toHaveLength(MEMBERS - 1);
  expect(JSON.parse(written!.leased)).toHaveLength(MEMBERS - 1);
});

test("a broadcast's statement looks each recipient's presence up once (generic plan, run)", async () => {
  const plan = await planOf(scratch.backend.databaseUrl ?? scratch.db, (recorder) => enqueueSends(recorder, [broadcast()], holders), {
    generic: true,
    analyze: true,
  });
  const presenceLookups = [...plan.matchAll(/on presences live .*loops=(\d+)/g)].map((m) => Number(m[1]));
  expect(presenceLookups.length).toBeGreaterThan(0);
  // Once per recipient; before, once per recipient for every recipient (199 × 199).
  expect(Math.max(...presenceLookups)).toBeLessThanOrEqual(MEMBERS);
});

test("a channel send goes to the channel's other members", async () => {
  const [written] = await enqueueSends(scratch.db, [broadcast("#room")], holders);
  expect(JSON.parse(written!.recipients)).toHaveLength(2);
});

test("a channel or direct send reads its recipients, not every member of every mesh (generic plan, run)", async () => {
  await aLargerDeployment();
  const [{ pubkey }] = (await scratch.db.rows<{ pubkey: string }>(sql`SELECT pubkey FROM members WHERE display_name = 'm7'`)) as [{ pubkey: string }];
  for (const target of ["#room", pubkey]) {
    const plan = await planOf(scratch.backend.databaseUrl ?? scratch.db, (recorder) => enqueueSends(recorder, [broadcast(target)], holders), {
      generic: true,
      analyze: true,
    });
    // Rows read by scans of either table: at most the one a join reads before it finds nothing to join it with.
    const read = [...plan.matchAll(new RegExp(`Seq Scan on (?:members|channel_members) .*actual time=\\S+ rows=(${COUNT}) loops=(\\d+)`, "g"))].map(
      (m) => Number(m[1]) * Number(m[2]),
    );
    expect({ target, read: read.filter((rows) => rows > 1) }).toEqual({ target, read: [] });
  }
});
