// The embedded database runs no autovacuum: the broker's housekeeping
// vacuums the tables that grew (store/housekeeping.ts, vacuumGrownTables). On an embedded
// database whatever backend the run is on: it is the default a newcomer gets.
import { afterEach, describe, expect, test } from "bun:test";
import { connect, type Database } from "@switchboard/db";
import { embeddedBackend, spawnBroker, type BrokerProcess, type TestBackend } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { vacuumGrownTables } from "../src/store/housekeeping.ts";
import { meshWithMember } from "./support/scratch-db.ts";

let backend: TestBackend | undefined;
let db: Database | undefined;
const started: BrokerProcess[] = [];
afterEach(async () => {
  for (const b of started.splice(0)) await b.stop();
  await db?.close();
  db = undefined;
  await backend?.dispose();
  backend = undefined;
});

/** A round of traffic as the broker writes it: 500 messages sent, leased, acknowledged (moved), and pruned. */
async function traffic(on: Database, ids: { meshId: string; memberId: string }): Promise<void> {
  await on.rows(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${ids.meshId}::uuid, ${ids.memberId}::uuid, 'k', 'next', 'n', repeat('c', 200), now() + interval '1 hour'
      FROM generate_series(1, 500) g
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
    SELECT id, ${ids.memberId}::uuid, 'next', now() + interval '1 hour' FROM m`);
  await on.rows(sql`UPDATE deliveries SET state = 'leased', lease_expires_at = now() + interval '30 seconds' WHERE state = 'queued'`);
  await on.rows(sql`
    WITH moved AS (DELETE FROM deliveries WHERE state = 'leased' RETURNING *)
    INSERT INTO acked_deliveries (id, message_id, recipient_member_id, priority, attempt, created_at, expires_at, acked_at)
    SELECT id, message_id, recipient_member_id, priority, attempt, created_at, expires_at, now() FROM moved`);
  await on.rows(sql`DELETE FROM acked_deliveries`);
  await on.rows(sql`DELETE FROM messages`);
}

type Pages = Record<"deliveries" | "acked_deliveries" | "messages", number>;

const pages = async (on: Database): Promise<Pages> =>
  (
    await on.rows<Pages>(sql`
      SELECT (pg_relation_size('deliveries') / 8192)::int AS deliveries,
             (pg_relation_size('acked_deliveries') / 8192)::int AS acked_deliveries,
             (pg_relation_size('messages') / 8192)::int AS messages`)
  )[0]!;

describe("vacuumGrownTables on the embedded database", () => {
  test("tables churned by traffic keep about the size of one round's rows, not of every row they ever held", async () => {
    backend = embeddedBackend({ withSchema: true });
    db = await connect({ databaseUrl: "", dataDir: backend.dataDir! });
    const ids = await meshWithMember(db, "vacuum");
    const after: Pages[] = [];
    for (let round = 0; round < 20; round++) {
      await traffic(db, ids);
      // Measured before the vacuum: what the round's rows took, in pages reused or new.
      after.push(await pages(db));
      expect(await vacuumGrownTables(db)).toEqual(expect.arrayContaining(["acked_deliveries", "deliveries", "messages"]));
      // Nothing grew since: nothing to vacuum, nor any statement to plan again for it.
      expect(await vacuumGrownTables(db)).toEqual([]);
    }
    // Unvacuumed, each round adds as many pages again: 20 times the first round's by the last.
    const [first] = after;
    for (const table of ["deliveries", "acked_deliveries", "messages"] as const) {
      expect(first![table]).toBeGreaterThan(0);
      const largest = Math.max(...after.map((p) => p[table]));
      expect({ table, within: largest <= 2 * first![table] }).toEqual({ table, within: true });
    }
  });
});

describe("an embedded broker's housekeeping", () => {
  test("vacuums the tables that grew", async () => {
    backend = embeddedBackend({ withSchema: true });
    // Rows of traffic the broker finds as it starts, never vacuumed.
    db = await connect({ databaseUrl: "", dataDir: backend.dataDir! });
    await traffic(db, await meshWithMember(db, "vacuum"));
    await db.close();
    db = undefined;
    const broker = await spawnBroker({ ...backend.env, HOUSEKEEPING_INTERVAL_MS: "100", LOG_LEVEL: "debug" });
    started.push(broker);
    const line = await broker.waitForLog("tables vacuumed", 30_000);
    expect(line.tables).toEqual(expect.arrayContaining(["acked_deliveries", "deliveries", "messages"]));
  });
});
