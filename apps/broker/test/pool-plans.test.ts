// The hot statements as their pools plan them, planned while the statistics
// say the tables are empty and run once the tables are large. That happens:
// a quiet deployment's tables, pruned, vacuumed and analyzed, are planned
// again at the next statement, and the plan is kept until the next ANALYZE,
// a minute or more into the traffic. Planned so, the send statement read
// every presence, delivery and message for each send, and the claims, acks
// and requeues the whole deliveries table (one push taken back: 90 million
// index entries), even when they were planned at each call; the expiry
// sweep ran for minutes. Both pools now plan sequential scans only where no
// index serves, and the statements name the rows they update by id instead
// of joining them back to their table; an index of live presences, leases
// or deliveries serves only the statements that test its leading column.
// Each statement is planned with its pool's own settings, run once on the
// empty tables, then run on 25,000 deliveries and 5,000 live presences on
// its instance (and 5,000 of another mesh on another): it must read the rows
// it acts on and the index entries on the way to them, or, for a sweep that
// reads its instance's or mesh's rows by design, no more than those. On the
// embedded database too (PGlite's Postgres 18, with the settings its broker
// opens it with), whose tables a vacuum of the broker's leaves so as well.
import { beforeAll, describe, expect, test } from "bun:test";
import { backendKind } from "@switchboard/testkit";
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { ackDeliveries, ackHeldBy } from "../src/store/queue/ack.ts";
import { claimForHolder, claimForPresences, leasesOf, membersWithQueuedWork, readLeases, renewLeases } from "../src/store/queue/claim.ts";
import { enqueueSends, type NewMessage } from "../src/store/queue/enqueue.ts";
import { dropUndelivered } from "../src/store/queue/drop.ts";
import { expireDeliveries } from "../src/store/queue/expire.ts";
import { requeue } from "../src/store/queue/requeue.ts";
import { resolveHellos, takePendingSignals, type HelloRequest } from "../src/store/hello.ts";
import { endedPresences, endSessions, insertPresencesWithinCap, settledPresencesOfInstance } from "../src/store/presences.ts";
import { findPresenceForSignal } from "../src/store/status.ts";
import { ackByHand } from "./support/acked.ts";
import { planOf, poolSettings, rowsReadFrom } from "./support/plans.ts";
import { useBackendDatabase } from "./support/scratch-db.ts";
import { tableStatistics, vacuumToNoPages } from "./support/vacuum.ts";

const scratch = useBackendDatabase();
let meshId = "";
let [sender, recipient, bystander] = ["", "", ""];
/** A member of another mesh, whose presences are on another instance. */
let [otherMeshId, stranger] = ["", ""];
const settings: Record<"main" | "relaxed", Record<string, string>> = { main: {}, relaxed: {} };
const INSTANCE = "pool-plans";
const ELSEWHERE = "pool-plans-next";

/**
 * The rows a statement acts on, made by the fill after it was planned. New
 * for each test: the fills before, rolled back, left their index entries.
 */
interface Targets {
  holder: string;
  toAck: string;
  toClaim: string;
  lapsed: string;
  unpushed: string;
}
const newTargets = (): Targets => ({
  holder: crypto.randomUUID(),
  toAck: crypto.randomUUID(),
  toClaim: crypto.randomUUID(),
  lapsed: crypto.randomUUID(),
  unpushed: crypto.randomUUID(),
});
/** A member's pubkey, from its name: 64 hex digits, as a send names it. */
const pubkeyOf = (name: string) => Buffer.from(name).toString("hex").padEnd(64, "0");
const BULK = 5000;
const FEW = 6;

beforeAll(async () => {
  const [mesh] = await scratch.db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('pool-plans', 'pool-plans') RETURNING id`);
  meshId = mesh!.id;
  const ids: string[] = [];
  for (const name of ["sender", "recipient", "bystander"]) {
    const [member] = await scratch.db.rows<{ id: string }>(sql`
      INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${meshId}::uuid, ${pubkeyOf(name)}, ${name}) RETURNING id`);
    ids.push(member!.id);
  }
  [sender, recipient, bystander] = ids as [string, string, string];
  const [otherMesh] = await scratch.db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('pool-plans-next', 'pool-plans-next') RETURNING id`);
  otherMeshId = otherMesh!.id;
  const [member] = await scratch.db.rows<{ id: string }>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${otherMeshId}::uuid, ${pubkeyOf("stranger")}, 'stranger') RETURNING id`);
  stranger = member!.id;
  settings.main = await poolSettings(scratch.db);
  settings.relaxed = await poolSettings(scratch.db.relaxed);
  await scratch.db.rows(sql`ANALYZE webhooks`);
});

/**
 * `count` messages to `to`, their deliveries in `state` (leased ones to
 * `leasedTo`, ending in `leaseEnds`), both expiring in `expiresIn` (a day);
 * one of them with the id `id` when given.
 */
async function deliveries(
  tx: Executor,
  to: string,
  count: number,
  state: string,
  options: { id?: string; leasedTo?: string; leaseEnds?: string; expiresIn?: string } = {},
) {
  const expires = sql`now() + ${options.expiresIn ?? "1 day"}::interval`;
  // Acknowledged ones are written leased to a holder of their own, then moved as an ack moves them.
  const acking = crypto.randomUUID();
  const leased = state === "leased" || state === "acked";
  await tx.rows(sql`
    WITH m AS (
      INSERT INTO messages (id, mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT CASE WHEN g = 1 AND ${options.id ?? null}::uuid IS NOT NULL THEN ${options.id ?? null}::uuid ELSE gen_random_uuid() END,
             ${meshId}::uuid, ${sender}::uuid, 'k', 'next', 'n', 'c', ${expires}
      FROM generate_series(1, ${count}) g
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, lease_presence_id, lease_expires_at, attempt)
    SELECT id, ${to}::uuid, 'next', ${expires}, ${leased ? "leased" : state},
           CASE WHEN ${leased} THEN ${state === "acked" ? acking : (options.leasedTo ?? null)}::uuid END,
           CASE WHEN ${leased} THEN now() + ${options.leaseEnds ?? "1 minute"}::interval END,
           CASE WHEN ${state} = 'queued' THEN 0 ELSE 1 END
    FROM m`);
  if (state === "acked") await tx.rows(ackByHand(sql`d.lease_presence_id = ${acking}::uuid`));
}

/**
 * What a deployment holds after a while: acknowledged history, another
 * presence's leases, another member's queue, messages expired long ago, a crowd of presences on this
 * instance and another, of another mesh, on the next; and the rows acted on
 * (one message of it expired).
 */
async function fill(tx: Executor, { holder, toAck, toClaim, lapsed, unpushed }: Targets): Promise<void> {
  await tx.rows(sql`
    INSERT INTO presences (id, mesh_id, member_id, instance_id, session_id, display_name)
    VALUES (${holder}::uuid, ${meshId}::uuid, ${recipient}::uuid, ${INSTANCE}, 'holder', 'recipient')`);
  const [other] = await tx.rows<{ id: string }>(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    VALUES (${meshId}::uuid, ${recipient}::uuid, ${INSTANCE}, 'other', 'recipient') RETURNING id`);
  await tx.rows(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    SELECT ${meshId}::uuid, ${bystander}::uuid, ${INSTANCE}, 'crowd-' || g, 'bystander' FROM generate_series(1, ${BULK}) g`);
  await tx.rows(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    SELECT ${otherMeshId}::uuid, ${stranger}::uuid, ${ELSEWHERE}, 'far-' || g, 'stranger' FROM generate_series(1, ${BULK}) g`);
  await deliveries(tx, recipient, BULK, "acked");
  await deliveries(tx, recipient, BULK, "leased", { leasedTo: other!.id, leaseEnds: "-1 second" });
  await deliveries(tx, bystander, BULK, "queued");
  await deliveries(tx, bystander, BULK, "acked");
  await deliveries(tx, recipient, 1, "leased", { id: toAck, leasedTo: holder });
  await deliveries(tx, recipient, 1, "queued", { id: toClaim });
  await deliveries(tx, recipient, 1, "leased", { id: lapsed, leasedTo: holder, leaseEnds: "-1 second" });
  await deliveries(tx, recipient, 1, "leased", { id: unpushed, leasedTo: holder });
  await deliveries(tx, bystander, 1, "queued", { expiresIn: "-1 second" });
  // Messages past their time whose deliveries expired at an earlier sweep:
  // kept until the prune, and nothing for the next sweep to read.
  await deliveries(tx, bystander, BULK, "expired", { expiresIn: "-1 second" });
}

/** A send of the statement's own: one message, direct to `to`. */
function send(from: string, to: string, replyTo: string | null = null): NewMessage {
  return { id: crypto.randomUUID(), meshId, senderId: from, clientId: null, targetSpec: pubkeyOf(to), priority: "next", nonce: "n", ciphertext: "c", replyTo, ttlSeconds: 60, replyWaitSeconds: null };
}

/** A signed hello of the member named `name`, for its session `sessionId`. */
function hello(name: string, sessionId: string): HelloRequest {
  return { idx: 0, meshRef: meshId, pubkey: pubkeyOf(name), sessionId, pid: null, cwd: null, timestamp: Date.now(), signature: crypto.randomUUID(), claimMesh: null };
}

/** A presence of the recipient's that a hello admits on this instance. */
function newPresence() {
  return {
    id: crypto.randomUUID(), meshId, memberId: recipient, instanceId: INSTANCE, sessionId: "new", pid: null, cwd: null,
    displayName: "recipient", status: "idle" as const, statusSource: "manual" as const, statusAgeMs: null, replaced: null,
  };
}

const local = { instanceId: INSTANCE, unavailable: [], leaseSeconds: 30, notify: true };
/** The same holders, saying every recipient has a presence here: a batch of direct sends goes to the direct statement. */
const direct = { ...local, recipientsHere: true };

interface Case {
  pool: "main" | "relaxed";
  run: (db: Executor, t: Targets) => Promise<unknown>;
  /** The node that writes, which must have written one row (none for a read). */
  writes?: string;
  /** A table read more than FEW rows of by design, and its bound. */
  reads?: { table: Table; atMost: number };
  /** Held to its bound on the Postgres server only (why, beside the case). */
  serverOnly?: true;
}

type Table = "deliveries" | "acked_deliveries" | "presences" | "messages" | "members";

const cases: Array<[string, Case]> = [
  ["a send", { pool: "main", run: (db) => enqueueSends(db, [send(sender, "recipient")], local), writes: "Insert on deliveries" }],
  ["a reply", { pool: "main", run: (db, t) => enqueueSends(db, [send(recipient, "sender", t.toAck)], local), writes: "Insert on deliveries" }],
  ["a send by the direct statement", { pool: "main", run: (db) => enqueueSends(db, [send(sender, "recipient")], direct), writes: "Insert on deliveries" }],
  ["a reply by the direct statement", { pool: "main", run: (db, t) => enqueueSends(db, [send(recipient, "sender", t.toAck)], direct), writes: "Insert on deliveries" }],
  ["an ack", { pool: "relaxed", run: (db, t) => ackDeliveries(db, [{ memberId: recipient, messageId: t.toAck }]), writes: "Delete on deliveries d" }],
  ["a claim", { pool: "relaxed", run: (db, t) => claimForPresences(db, [{ memberId: recipient, presences: [{ id: t.holder, room: 10 }] }], 30), writes: "Update on deliveries d_1" }],
  ["the requeue of a presence's lapsed leases", { pool: "relaxed", run: (db, t) => requeue(db, { expiredOf: [t.holder] }), writes: "Update on deliveries d" }],
  ["the read of a delivery another instance's send leased to a presence here", { pool: "relaxed", run: (db, t) => readLeases(db, [{ presenceId: t.holder, seq: 1 }]) }],
  // The holder's three leases; not the other presence's.
  ["the list of a presence's leases, for a recovery after the bus was away", { pool: "relaxed", run: (db, t) => leasesOf(db, [t.holder]), reads: { table: "deliveries", atMost: 3 } }],
  ["the renewal of leases whose notice was missed", { pool: "relaxed", run: (db, t) => renewLeases(db, [{ presenceId: t.holder, seq: 1 }], 30) }],
  ["a webhook's claim", { pool: "main", run: (db) => claimForHolder(db, recipient, crypto.randomUUID(), 10, 30), writes: "Update on deliveries d_1" }],
  ["the expiry of messages that outlived their time", { pool: "main", run: (db) => expireDeliveries(db, 1000), writes: "Update on deliveries d" }],
  ["the requeue of a push never written", { pool: "relaxed", run: (db, t) => requeue(db, { pushes: [{ messageId: t.unpushed, memberId: recipient, presenceId: t.holder }] }), writes: "Update on deliveries d" }],
  // The holder's three leases, each read to be found, locked in order and changed.
  ["the requeue of a presence's leases (its close)", { pool: "main", run: (db, t) => requeue(db, { presences: [t.holder] }), reads: { table: "deliveries", atMost: 3 * 3 } }],
  ["a webhook attempt's ack of the leases it held", { pool: "main", run: (db, t) => ackHeldBy(db, t.holder), reads: { table: "deliveries", atMost: 3 * 3 } }],
  // Every delivery the member is owed (its other presence's leases, mostly), found, locked and deleted, by design; not the others'.
  [
    "a revocation's drop of what its member is owed",
    {
      pool: "main",
      run: (db) => dropUndelivered(db, recipient),
      reads: { table: "deliveries", atMost: 3 * (BULK + FEW) },
      // Its leases are found through the index of every lease, which also
      // holds the entries of the fill's 10,000 acknowledged deliveries until
      // a vacuum. The Postgres server here (15) walks it with an index scan,
      // whose count leaves out the entries of rows gone; the embedded
      // database (Postgres 18) with a bitmap scan, whose count is of every
      // entry it matched.
      serverOnly: true,
    },
  ],
  // Every lapsed lease (the other presence's), and each again to update it, by design; not every delivery.
  ["the lease sweep", { pool: "main", run: (db) => requeue(db, { expiredLeases: { limit: 10_000 } }), reads: { table: "deliveries", atMost: 2 * (BULK + FEW) } }],
  // Every live presence of the instance, by design; not the next instance's.
  ["the catch-up of the instance's members with queued work", { pool: "main", run: (db) => membersWithQueuedWork(db, INSTANCE), reads: { table: "presences", atMost: BULK + FEW } }],
  ["the catch-up's look for presences whose session another took over", { pool: "main", run: (db, t) => endedPresences(db, [t.holder]) }],
  // Every live presence of the instance, by design; not the next instance's.
  ["the catch-up's look for the instance's presences without a socket", { pool: "main", run: (db) => settledPresencesOfInstance(db, INSTANCE, 0), reads: { table: "presences", atMost: BULK + FEW } }],
  ["a hello's check against the directory and its session's last status", { pool: "main", run: (db) => resolveHellos(db, [hello("recipient", "holder")], 60_000, 120_000) }],
  ["a hello's take of the hook signals kept for its session", { pool: "main", run: (db) => takePendingSignals(db, [{ idx: 0, memberId: recipient, sessionId: "holder", pid: null, cwd: "/" }]) }],
  // Every live presence of the hello's mesh, by design (its cap); not the other mesh's.
  ["a hello's counts of its member's and its mesh's live presences, and its insert", { pool: "main", run: (db) => insertPresencesWithinCap(db, [newPresence()], { perMesh: 100_000, perMember: 100_000 }), writes: "Insert on presences", reads: { table: "presences", atMost: BULK + FEW } }],
  ["a hello's end of the presence its session had", { pool: "main", run: (db) => endSessions(db, [{ memberId: recipient, sessionId: "holder" }]), writes: "Update on presences p" }],
  ["a hook's look for the presence its signal is about", { pool: "main", run: (db) => findPresenceForSignal(db, recipient, { sessionId: "holder", pid: null, cwd: "/" }) }],
];

const EMPTIED = ["acked_deliveries", "deliveries", "messages", "presences"] as const;
const statistics = () => tableStatistics(scratch.db, EMPTIED);

// Two ways the statistics say "empty": vacuumed to no pages (a plan made then
// sees the pages the table has when planned; kept, it sees none), or emptied
// and vacuumed with the pages kept (autovacuum truncates only when it gets
// the table's lock at once): a density of no rows per page, which no number
// of pages changes, so that even a plan made at each call expects one row.
// (vacuum_truncate is set for each, and autovacuum kept off these tables,
// so that it cannot change one into the other meanwhile, nor hold a table's
// lock while the test's own VACUUM would truncate it.)
const vacuumTruncate = async (on: boolean) => {
  for (const table of EMPTIED) {
    await scratch.db.rows(
      sql`ALTER TABLE ${sql.identifier(table)} SET (vacuum_truncate = ${sql.raw(String(on))}, autovacuum_enabled = false)`,
    );
  }
};
const emptied: Array<[string, { prepare: () => Promise<unknown>; pages: boolean }]> = [
  [
    "vacuumed to no pages and analyzed",
    {
      prepare: async () => {
        await vacuumTruncate(true);
        // The rolled-back fills of the tests before are vacuumed away (the
        // test then says which table kept pages).
        await vacuumToNoPages(scratch.db, EMPTIED);
      },
      pages: false,
    },
  ],
  [
    "emptied, vacuumed with its pages kept, and analyzed",
    {
      prepare: async () => {
        await vacuumTruncate(false);
        await fill(scratch.db, newTargets());
        for (const table of EMPTIED) await scratch.db.rows(sql`DELETE FROM ${sql.identifier(table)}`);
        await scratch.db.rows(sql`VACUUM ANALYZE ${sql.join(EMPTIED.map((table) => sql.identifier(table)), sql`, `)}`);
      },
      pages: true,
    },
  ],
];

const everywhere = cases.filter(([, c]) => !c.serverOnly);
const onTheServer = cases.filter(([, c]) => c.serverOnly);

describe.each(emptied)("planned on tables %s, run full", (_, { prepare, pages }) => {
  const readsItsOwnRows = async (_: string, { pool, run, writes, reads }: Case) => {
    await prepare();
    expect(await statistics()).toEqual(EMPTIED.map((relname) => ({ relname, pages, reltuples: 0 })));
    const targets = newTargets();
    const plan = await planOf(scratch.backend.databaseUrl ?? scratch.db, (db) => run(db, targets), {
      settings: settings[pool],
      analyze: true,
      thenFill: (tx) => fill(tx, targets),
    });
    if (writes) expect(plan).toMatch(new RegExp(`${writes}  \\(cost=\\S+ rows=\\d+ width=\\d+\\) \\(actual time=\\S+ rows=1(?:\\.00)? loops=1\\)`));
    // Its own rows, the index entries its probes pass, the recipient's two
    // presences: a handful of each table, not the thousands around them.
    const tables: Table[] = ["deliveries", "acked_deliveries", "presences", "messages", "members"];
    const over = tables
      .map((table) => ({ table, read: rowsReadFrom(plan, table) }))
      .filter((r) => r.read > (r.table === reads?.table ? reads.atMost : FEW));
    expect({ over, plan: over.length > 0 ? plan : "" }).toEqual({ over: [], plan: "" });
  };
  test.each(everywhere)("%s reads its own rows", readsItsOwnRows);
  test.skipIf(backendKind === "embedded").each(onTheServer)("%s reads its own rows", readsItsOwnRows);
});

// The ties such plans break by the indexes' sizes alone: a probe of one
// member's, instance's or mesh's live presences, of a member's queue or of
// one presence's leases, against a walk of every live presence, delivery or
// lease through an index of another column. Those indexes serve only
// statements that test their leading column; here the indexes a probe
// should take (and the primary key, where a walk of it would win) are
// dropped, in a transaction rolled back, and what is left must not be one of
// them.
const probes: Array<[string, { dropped: string[]; probe: string; mustNotUse: string[] }]> = [
  [
    "a member's live presences",
    {
      dropped: ["DROP INDEX presences_live_member_idx", "DROP INDEX presences_live_session_key", "DROP INDEX presences_session_idx"],
      probe: "SELECT id FROM presences WHERE member_id = '00000000-0000-4000-8000-000000000000' AND disconnected_at IS NULL",
      mustNotUse: ["presences_live_instance_idx", "presences_live_mesh_idx"],
    },
  ],
  [
    "the live presences of an instance",
    {
      dropped: ["DROP INDEX presences_live_instance_idx"],
      probe: "SELECT id FROM presences WHERE instance_id = 'next' AND disconnected_at IS NULL",
      mustNotUse: ["presences_live_member_idx", "presences_live_session_key", "presences_live_mesh_idx"],
    },
  ],
  [
    "the live presences of a mesh",
    {
      dropped: ["DROP INDEX presences_live_mesh_idx"],
      probe: "SELECT id FROM presences WHERE mesh_id = '00000000-0000-4000-8000-000000000000' AND disconnected_at IS NULL",
      mustNotUse: ["presences_live_member_idx", "presences_live_session_key", "presences_live_instance_idx"],
    },
  ],
  [
    "a member's queued deliveries",
    {
      dropped: ["DROP INDEX deliveries_queued_idx", "DROP INDEX deliveries_queued_now_idx", "ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey"],
      probe: "SELECT id FROM deliveries WHERE recipient_member_id = '00000000-0000-4000-8000-000000000000' AND state = 'queued'",
      mustNotUse: ["deliveries_message_recipient_key", "deliveries_queued_expires_idx"],
    },
  ],
  [
    "a presence's leases",
    {
      dropped: ["DROP INDEX deliveries_lease_presence_idx"],
      probe: "SELECT id FROM deliveries WHERE lease_presence_id = '00000000-0000-4000-8000-000000000000' AND state = 'leased'",
      mustNotUse: ["deliveries_leased_idx"],
    },
  ],
];

describe("an index of live presences, deliveries or leases by another column", () => {
  test.each(probes)("is not walked for %s", async (_, { dropped, probe, mustNotUse }) => {
    const plan = await scratch.db
      .transaction(async (tx) => {
        await tx.rows(sql`SELECT set_config('enable_seqscan', 'off', true)`);
        for (const statement of dropped) await tx.rows(sql.raw(statement));
        const rows = await tx.rows<{ "QUERY PLAN": string }>(sql`EXPLAIN ${sql.raw(probe)}`);
        throw Object.assign(new Error("rolled back"), { plan: rows.map((r) => r["QUERY PLAN"]).join("\n") });
      })
      .catch((error: { plan?: string }) => error.plan ?? String(error));
    expect(plan).toContain("Scan");
    for (const index of mustNotUse) expect(plan).not.toContain(index);
  });
});
