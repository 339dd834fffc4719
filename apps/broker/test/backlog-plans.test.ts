// The statements that read one member's queue, planned as their pools plan
// them on tables analyzed while one member away holds the whole backlog: the
// common shape of a deployment's queue, since what reaches a connected
// session is leased and then acknowledged away. The statistics then say a
// member's queue is thousands of deliveries long, and a probe of it was
// planned as a walk of the index of every queued delivery by its expiry
// (the expiry sweep's), testing each entry's member: every send to anyone
// read the away member's whole backlog, once per recipient (0.47 ms a
// recipient for a backlog of 10,000). Each must read its own rows.
import { beforeAll, expect, test } from "bun:test";
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { claimForHolder, claimForPresences } from "../src/store/queue/claim.ts";
import { enqueueSends, type NewMessage } from "../src/store/queue/enqueue.ts";
import { webhookMembers, webhookQueueDepth, webhookView } from "../src/store/webhooks.ts";
import { planOf, poolSettings, readPast } from "./support/plans.ts";
import { useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
const INSTANCE = "backlog-plans";
const BACKLOG = 5000;
const FEW = 6;
let meshId = "";
const ids = { sender: "", recipient: "", away: "", hooked: "", presence: "" };
const settings: Record<"main" | "relaxed", Record<string, string>> = { main: {}, relaxed: {} };
const pubkeyOf = (name: string) => Buffer.from(name).toString("hex").padEnd(64, "0");

/** `count` messages from the sender to `to`, their deliveries queued. */
async function queued(db: Executor, to: string, count: number): Promise<void> {
  await db.rows(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${meshId}::uuid, ${ids.sender}::uuid, 'k', 'next', 'n', 'c', now() + interval '1 day'
      FROM generate_series(1, ${count}) g
      RETURNING id, expires_at)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state)
    SELECT id, ${to}::uuid, 'next', expires_at, 'queued' FROM m`);
}

beforeAll(async () => {
  const db = scratch.db;
  const [mesh] = await db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('backlog-plans', 'backlog-plans') RETURNING id`);
  meshId = mesh!.id;
  for (const name of ["sender", "recipient", "away", "hooked"] as const) {
    const [member] = await db.rows<{ id: string }>(sql`
      INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${meshId}::uuid, ${pubkeyOf(name)}, ${name}) RETURNING id`);
    ids[name] = member!.id;
  }
  const [presence] = await db.rows<{ id: string }>(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    VALUES (${meshId}::uuid, ${ids.recipient}::uuid, ${INSTANCE}, 'recipient', 'recipient') RETURNING id`);
  ids.presence = presence!.id;
  await db.rows(sql`INSERT INTO webhooks (member_id, url, secret) VALUES (${ids.hooked}::uuid, 'https://example.invalid/hook', 's')`);
  await queued(db, ids.away, BACKLOG);
  await queued(db, ids.recipient, 1);
  await queued(db, ids.hooked, 1);
  await db.rows(sql`ANALYZE meshes, members, presences, webhooks, messages, deliveries`);
  settings.main = await poolSettings(db);
  settings.relaxed = await poolSettings(db.relaxed);
});

const send = (): NewMessage => ({
  id: crypto.randomUUID(), meshId, senderId: ids.sender, clientId: null, targetSpec: pubkeyOf("recipient"), priority: "next",
  nonce: "n", ciphertext: "c", replyTo: null, ttlSeconds: 60, replyWaitSeconds: null,
});
const holders = { instanceId: INSTANCE, unavailable: [], leaseSeconds: 30, notify: true };

const cases: Array<[string, { pool: "main" | "relaxed"; run: (db: Executor) => Promise<unknown> }]> = [
  ["a send", { pool: "main", run: (db) => enqueueSends(db, [send()], holders) }],
  ["a send by the direct statement", { pool: "main", run: (db) => enqueueSends(db, [send()], { ...holders, recipientsHere: true }) }],
  ["a claim", { pool: "relaxed", run: (db) => claimForPresences(db, [{ memberId: ids.recipient, presences: [{ id: ids.presence, room: 10 }] }], 30) }],
  ["a webhook's claim", { pool: "main", run: (db) => claimForHolder(db, ids.hooked, crypto.randomUUID(), 10, 30) }],
  ["the look for webhook members with work due", { pool: "main", run: (db) => webhookMembers(db) }],
  ["a webhook's view, with the deliveries it owes", { pool: "main", run: (db) => webhookView(db, ids.hooked) }],
  ["the deliveries owed to webhook members, counted", { pool: "main", run: (db) => webhookQueueDepth(db) }],
];

test.each(cases)("%s reads the member's own queue, not the backlog of another", async (_, { pool, run }) => {
  const plan = await planOf(scratch.backend.databaseUrl ?? scratch.db, run, { settings: settings[pool], analyze: true });
  expect(readPast(plan, ["deliveries"], FEW)).toBeNull();
});
