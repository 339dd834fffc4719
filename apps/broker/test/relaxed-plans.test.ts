// The claims-and-acks pool's statements as that pool plans them, on a new
// deployment: planned on empty tables, run once they are large. A plan its
// connection keeps (a generic one) serves until the next ANALYZE, and one
// made on an empty deliveries table may join it by scanning it whole; that
// pool's statements only ever need index probes and nested loops. Each
// statement is planned with the pool's own settings, run once on the empty
// tables, then run again on 20,000 deliveries: it must reach the few rows
// it acts on by probes.
import { beforeAll, describe, expect, test } from "bun:test";
import { backendKind } from "@switchboard/testkit";
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { ackDeliveries } from "../src/store/queue/ack.ts";
import { claimForPresences } from "../src/store/queue/claim.ts";
import { requeue } from "../src/store/queue/requeue.ts";
import { planOf, poolSettings, rowsReadFrom } from "./support/plans.ts";
import { useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
let meshId = "";
let [sender, recipient, bystander] = ["", "", ""];
let relaxed: Record<string, string> = {};
// Made by the fill, after the statement was planned: the rows it acts on.
const holder = crypto.randomUUID();
const [toAck, toClaim, lapsed, unpushed] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
const BULK = 5000;

beforeAll(async () => {
  const [mesh] = await scratch.db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('relaxed', 'relaxed') RETURNING id`);
  meshId = mesh!.id;
  const ids: string[] = [];
  for (const name of ["sender", "recipient", "bystander"]) {
    const [member] = await scratch.db.rows<{ id: string }>(sql`
      INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${meshId}::uuid, ${name.padEnd(64, "k")}, ${name}) RETURNING id`);
    ids.push(member!.id);
  }
  [sender, recipient, bystander] = ids as [string, string, string];
  relaxed = await poolSettings(scratch.db.relaxed);
  // Statistics that say so: a plan made now expects one row of each table.
  await scratch.db.rows(sql`ANALYZE deliveries, messages, presences, webhooks`);
});

/** `count` messages to `to`, their deliveries in `state` (leased ones to `leasedTo`, ending in `leaseEnds`); one of them with the id `id` when given. */
function deliveries(tx: Executor, to: string, count: number, state: string, options: { id?: string; leasedTo?: string; leaseEnds?: string } = {}) {
  const leased = state === "leased";
  return tx.rows(sql`
    WITH m AS (
      INSERT INTO messages (id, mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT CASE WHEN g = 1 AND ${options.id ?? null}::uuid IS NOT NULL THEN ${options.id ?? null}::uuid ELSE gen_random_uuid() END,
             ${meshId}::uuid, ${sender}::uuid, 'k', 'next', 'n', 'c', now() + interval '1 day'
      FROM generate_series(1, ${count}) g
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, acked_at, lease_presence_id, lease_expires_at, attempt)
    SELECT id, ${to}::uuid, 'next', now() + interval '1 day', ${state},
           CASE WHEN ${state} = 'acked' THEN now() END,
           CASE WHEN ${leased} THEN ${options.leasedTo ?? null}::uuid END,
           CASE WHEN ${leased} THEN now() + ${options.leaseEnds ?? "1 minute"}::interval END,
           CASE WHEN ${state} = 'queued' THEN 0 ELSE 1 END
    FROM m`);
}

/** What a deployment holds after a while: acknowledged history, another presence's leases, another member's queue; and the rows acted on. */
async function fill(tx: Executor): Promise<void> {
  await tx.rows(sql`
    INSERT INTO presences (id, mesh_id, member_id, instance_id, session_id, display_name)
    VALUES (${holder}::uuid, ${meshId}::uuid, ${recipient}::uuid, 'relaxed', 'holder', 'recipient')`);
  const [other] = await tx.rows<{ id: string }>(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    VALUES (${meshId}::uuid, ${recipient}::uuid, 'relaxed', 'other', 'recipient') RETURNING id`);
  await tx.rows(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    SELECT ${meshId}::uuid, ${bystander}::uuid, 'relaxed', 'crowd-' || g, 'bystander' FROM generate_series(1, ${BULK}) g`);
  await deliveries(tx, recipient, BULK, "acked");
  await deliveries(tx, recipient, BULK, "leased", { leasedTo: other!.id, leaseEnds: "-1 second" });
  await deliveries(tx, bystander, BULK, "queued");
  await deliveries(tx, bystander, BULK, "acked");
  await deliveries(tx, recipient, 1, "leased", { id: toAck, leasedTo: holder });
  await deliveries(tx, recipient, 1, "queued", { id: toClaim });
  await deliveries(tx, recipient, 1, "leased", { id: lapsed, leasedTo: holder, leaseEnds: "-1 second" });
  await deliveries(tx, recipient, 1, "leased", { id: unpushed, leasedTo: holder });
}

describe.skipIf(backendKind !== "postgres")("the claims-and-acks pool, planned on empty tables and run on full ones", () => {
  const statements: Array<[string, (db: Executor) => Promise<unknown>, number]> = [
    ["an ack", (db) => ackDeliveries(db, [{ memberId: recipient, messageId: toAck }]), 1],
    ["a claim", (db) => claimForPresences(db, [{ memberId: recipient, presences: [{ id: holder, room: 10 }] }], 30), 1],
    ["the requeue of a presence's lapsed leases", (db) => requeue(db, { expiredOf: [holder] }), 1],
    ["the requeue of a push never written", (db) => requeue(db, { pushes: [{ messageId: unpushed, memberId: recipient, presenceId: holder }] }), 1],
  ];

  test.each(statements)("%s reaches its rows by index probes", async (_, run, changed) => {
    const empty = await scratch.db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM deliveries`);
    expect(empty).toEqual([{ n: 0 }]);
    const plan = await planOf(scratch.backend.databaseUrl!, run, { settings: relaxed, analyze: true, thenFill: fill });
    expect(plan).toMatch(new RegExp(`^(?:Update on deliveries d|Nested Loop|CTE Scan on leased l) .* rows=${changed} loops=1\\)$`, "m"));
    // Its own row and the index entries its probes pass on the way, not the thousands around them.
    const most = { deliveries: 4, presences: 1, messages: 1 };
    const over = Object.entries(most)
      .map(([table, bound]) => ({ table, read: rowsReadFrom(plan, table), bound }))
      .filter((r) => r.read > r.bound);
    expect(over).toEqual([]);
  });
});
