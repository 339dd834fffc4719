// A member's claim, planned as the pools plan it on tables analyzed while
// few members hold many deliveries (a small mesh: one member away owed a
// backlog, another's messages expired and not yet pruned) and the claiming
// member is owed a few dozen. The statistics then say each member is owed
// hundreds, and the claim's read of the member's oldest deliveries (in id
// order) was planned as a walk of the deliveries' primary key, testing each
// row's member: every delivery of every member for a claim of ten. Each must
// read the deliveries it leases.
import { beforeAll, expect, test } from "bun:test";
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { claimForHolder, claimForPresences } from "../src/store/queue/claim.ts";
import { planOf, poolSettings, readPast } from "./support/plans.ts";
import { useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
const BACKLOG = 2000;
const OWED = 50;
const ROOM = 10;
let meshId = "";
const ids = { claimer: "", away: "", expired: "", presence: "" };
const settings: Record<"main" | "relaxed", Record<string, string>> = { main: {}, relaxed: {} };

/** `count` messages to `to`, their deliveries in `state`, expiring in `expiresIn`. */
async function deliveries(db: Executor, to: string, count: number, state: string, expiresIn: string): Promise<void> {
  await db.rows(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${meshId}::uuid, ${ids.claimer}::uuid, 'k', 'next', 'n', 'c', now() + ${expiresIn}::interval
      FROM generate_series(1, ${count}) g
      RETURNING id, expires_at)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state)
    SELECT id, ${to}::uuid, 'next', expires_at, ${state} FROM m`);
}

beforeAll(async () => {
  const db = scratch.db;
  const [mesh] = await db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('claim-plans', 'claim-plans') RETURNING id`);
  meshId = mesh!.id;
  for (const name of ["claimer", "away", "expired"] as const) {
    const [member] = await db.rows<{ id: string }>(sql`
      INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${meshId}::uuid, ${name.padEnd(64, "0")}, ${name}) RETURNING id`);
    ids[name] = member!.id;
  }
  const [presence] = await db.rows<{ id: string }>(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    VALUES (${meshId}::uuid, ${ids.claimer}::uuid, 'claim-plans', 'claimer', 'claimer') RETURNING id`);
  ids.presence = presence!.id;
  await deliveries(db, ids.away, BACKLOG, "queued", "1 day");
  await deliveries(db, ids.expired, BACKLOG, "expired", "-1 day");
  await deliveries(db, ids.claimer, OWED, "queued", "1 day");
  await db.rows(sql`ANALYZE meshes, members, presences, messages, deliveries`);
  settings.main = await poolSettings(db);
  settings.relaxed = await poolSettings(db.relaxed);
});

// What each reads by design: the deliveries it leases, then each again to
// update it; a webhook's claim on the embedded database reads the member's
// whole queue to take its oldest (its own rows, not another's).
const cases: Array<[string, { pool: "main" | "relaxed"; run: (db: Executor) => Promise<unknown>; atMost: number }]> = [
  ["a claim", { pool: "relaxed", run: (db) => claimForPresences(db, [{ memberId: ids.claimer, presences: [{ id: ids.presence, room: ROOM }] }], 30), atMost: 2 * ROOM }],
  ["a webhook's claim", { pool: "main", run: (db) => claimForHolder(db, ids.claimer, crypto.randomUUID(), ROOM, 30), atMost: OWED + ROOM }],
];

test.each(cases)("%s reads the member's own deliveries, not every member's", async (_, { pool, run, atMost }) => {
  const plan = await planOf(scratch.backend.databaseUrl ?? scratch.db, run, { settings: settings[pool], analyze: true });
  expect(readPast(plan, ["deliveries"], atMost)).toBeNull();
});
