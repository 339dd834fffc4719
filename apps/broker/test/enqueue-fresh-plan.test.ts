// The send statement as a new deployment plans it: an instance warms its pool
// at start (prepareEnqueue), and the pool keeps each connection's generic
// plan until the tables' statistics change, so on a fresh database the plan
// is made for empty tables and serves while they fill. The lookup of the
// request a reply answers was then planned on the (sender, client id) index,
// which holds every message the recipient has sent, rather than on the
// request's id: each delivery of each send read all of them. The sender's
// test, now made after the probe, still picks the one delivery to hold. And
// with the members table not analyzed yet, the planner expected one send per
// batch and joined the statement's own CTEs by nested loops: a batch of 500
// scanned two of them 500 times each. With a thousand live presences on
// the instance, the probe of a recipient's presence took the index of all
// of them. An urgent send to a busy session read every message held for
// it, to find no older urgent one.
import { beforeAll, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { enqueueSends } from "../src/store/queue/index.ts";
import { cteRescans, planOf, rowsReadFrom } from "./support/plans.ts";
import { newMessage, useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
let meshId = "";
const ids: string[] = [];
const pubkeys: string[] = [];
const holders = { instanceId: "fresh-plan", unavailable: [], leaseSeconds: 30, notify: false };

beforeAll(async () => {
  const [mesh] = await scratch.db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('fresh', 'fresh') RETURNING id`);
  meshId = mesh!.id;
  for (const name of ["a", "b", "c"]) {
    const pubkey = name.repeat(64);
    const [member] = await scratch.db.rows<{ id: string }>(sql`
      INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${meshId}::uuid, ${pubkey}, ${name}) RETURNING id`);
    ids.push(member!.id);
    pubkeys.push(pubkey);
  }
});

test("planned on empty tables, a send finds the request a reply answers by its id alone", async () => {
  // No message yet, and no ANALYZE: what the warm-up of a new deployment plans on.
  const [{ n }] = (await scratch.db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM messages`)) as [{ n: number }];
  expect(n).toBe(0);
  const reply = { ...newMessage(meshId, ids[0]!, pubkeys[1]!), replyTo: crypto.randomUUID() };
  const plan = await planOf(scratch.backend.databaseUrl ?? scratch.db, (recorder) => enqueueSends(recorder, [reply], holders), { generic: true });
  const probes = [...plan.matchAll(/(Seq Scan|Index Scan using \S+|Index Only Scan using \S+) on messages req\b/g)].map((m) => m[1]);
  expect(probes).toEqual(["Index Scan using messages_pkey"]);
});

test("with a thousand live presences on the instance, not analyzed yet, a send finds its recipient's by the member", async () => {
  // Another mesh's crowd, all connected to this instance.
  await scratch.db.rows(sql`
    WITH crowd AS (INSERT INTO meshes (slug, name) VALUES ('crowd', 'crowd') RETURNING id),
    everyone AS (
      INSERT INTO members (mesh_id, pubkey, display_name)
      SELECT crowd.id, md5(g::text) || md5(g::text || 'c'), 'c' || g FROM crowd, generate_series(1, 1000) g
      RETURNING id, mesh_id, display_name)
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    SELECT mesh_id, id, ${holders.instanceId}, gen_random_uuid()::text, display_name FROM everyone`);
  const plan = await planOf(
    scratch.backend.databaseUrl ?? scratch.db,
    (recorder) => enqueueSends(recorder, [newMessage(meshId, ids[0]!, pubkeys[1]!)], holders),
    { generic: true },
  );
  const probes = [...plan.matchAll(/(Seq Scan|Index Scan using \S+|Index Only Scan using \S+|Bitmap Index Scan on \S+) on presences\b/g)].map(
    (m) => m[1],
  );
  // Before: "Index Scan using presences_live_instance_idx", every live presence of the instance.
  expect(probes.length).toBeGreaterThan(0);
  for (const probe of probes) expect(probe).toMatch(/presences_live_(member_idx|session_key)$/);
});

// Each statement: the send statement, and the direct one (a batch to members held here).
for (const recipientsHere of [false, true]) {
  test(`planned on tables not analyzed yet, a batch of 500 reads each of its own CTEs once (generic plan, run${recipientsHere ? ", direct" : ""})`, async () => {
    const batch = Array.from({ length: 500 }, () => newMessage(meshId, ids[0]!, pubkeys[1]!));
    const plan = await planOf(
      scratch.backend.databaseUrl ?? scratch.db,
      (recorder) => enqueueSends(recorder, batch, { ...holders, notify: true, recipientsHere }),
      { generic: true, analyze: true },
    );
    expect(plan).toMatch(/rows=500(?:\.00)? loops=1/);
    // Before: the messages inserted and the sends were each scanned once per row of the batch (500 × 500).
    const rescans = cteRescans(plan);
    expect(rescans).toEqual([]);
  });
}

test("an urgent send to a busy session is leased to it without reading the messages held for it (generic plan, run)", async () => {
  const [busy] = await scratch.db.rows<{ id: string }>(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name, status)
    VALUES (${meshId}::uuid, ${ids[2]!}::uuid, ${holders.instanceId}, 'busy', 'c', 'working') RETURNING id`);
  await scratch.db.rows(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${meshId}::uuid, ${ids[0]!}::uuid, ${pubkeys[2]!}, 'next', 'n', 'c', now() + interval '1 day' FROM generate_series(1, 1000)
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
    SELECT id, ${ids[2]!}::uuid, 'next', now() + interval '1 day' FROM m`);
  const urgent = { ...newMessage(meshId, ids[0]!, pubkeys[2]!), priority: "now" as const };
  const plan = await planOf(scratch.backend.databaseUrl ?? scratch.db, (recorder) => enqueueSends(recorder, [urgent], holders), { generic: true, analyze: true });
  // Before: the thousand held messages, read to find no older urgent one.
  expect(rowsReadFrom(plan, "deliveries")).toBe(0);
  const [written] = await enqueueSends(scratch.db, [urgent], holders);
  expect(JSON.parse(written!.leased)).toEqual([expect.objectContaining({ presenceId: busy!.id })]);
});

test("a reply sent to many is held for the waiting request only in its sender's delivery", async () => {
  const request = { ...newMessage(meshId, ids[1]!, pubkeys[0]!), replyWaitSeconds: 60 };
  await enqueueSends(scratch.db, [request], holders);
  const reply = { ...newMessage(meshId, ids[0]!, "*"), replyTo: request.id };
  await enqueueSends(scratch.db, [reply], holders);
  const deliveries = await scratch.db.rows<{ recipient: string; state: string; holder: string | null }>(sql`
    SELECT recipient_member_id::text AS recipient, state, lease_presence_id::text AS holder
    FROM deliveries WHERE message_id = ${reply.id}::uuid`);
  const byRecipient = Object.fromEntries(deliveries.map(({ recipient, ...rest }) => [recipient, rest]));
  expect(byRecipient).toEqual({
    [ids[1]!]: { state: "leased", holder: request.id },
    [ids[2]!]: { state: "queued", holder: null },
  });
});
