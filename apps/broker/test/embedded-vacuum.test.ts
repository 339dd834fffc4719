// The embedded database runs no autovacuum: the broker vacuums its tables
// itself (store/housekeeping.ts, vacuumTables; services/sweepers.ts). On an
// embedded database whatever backend the run is on: it is the default a
// newcomer gets.
import { afterEach, describe, expect, test } from "bun:test";
import { connect, type Database } from "@switchboard/db";
import { embeddedBackend, spawnBroker, type BrokerProcess, type TestBackend } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { vacuumTables } from "../src/store/housekeeping.ts";
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

/**
 * Traffic as the broker writes it: `sent` messages sent, then the 300 oldest
 * owed leased, acknowledged (moved) and pruned with their messages. What is
 * left owed stays, as a backlog does.
 */
async function traffic(on: Database, ids: { meshId: string; memberId: string }, sent: number): Promise<void> {
  await on.rows(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${ids.meshId}::uuid, ${ids.memberId}::uuid, 'k', 'next', 'n', repeat('c', 200), now() + interval '1 hour'
      FROM generate_series(1, ${sent}) g
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
    SELECT id, ${ids.memberId}::uuid, 'next', now() + interval '1 hour' FROM m`);
  await on.rows(sql`
    UPDATE deliveries SET state = 'leased', lease_expires_at = now() + interval '30 seconds'
    WHERE id IN (SELECT id FROM deliveries WHERE state = 'queued' ORDER BY id LIMIT 300)`);
  await on.rows(sql`
    WITH moved AS (DELETE FROM deliveries WHERE state = 'leased' RETURNING *)
    INSERT INTO acked_deliveries (id, message_id, recipient_member_id, priority, attempt, created_at, expires_at, acked_at)
    SELECT id, message_id, recipient_member_id, priority, attempt, created_at, expires_at, now() FROM moved`);
  await on.rows(sql`
    WITH gone AS (DELETE FROM acked_deliveries RETURNING message_id)
    DELETE FROM messages WHERE id IN (SELECT message_id FROM gone)`);
}

/** A fresh embedded database with the schema, and a mesh of one member in it. */
async function freshDatabase(): Promise<{ db: Database; ids: { meshId: string; memberId: string } }> {
  backend = embeddedBackend({ withSchema: true });
  const opened = await connect({ databaseUrl: "", dataDir: backend.dataDir! });
  db = opened;
  return { db: opened, ids: await meshWithMember(opened, "vacuum") };
}

type Pages = Record<"deliveries" | "messages", number>;

const pages = async (on: Database): Promise<Pages> =>
  (
    await on.rows<Pages>(sql`
      SELECT (pg_relation_size('deliveries') / 8192)::int AS deliveries, (pg_relation_size('messages') / 8192)::int AS messages`)
  )[0]!;

describe("vacuumTables on the embedded database", () => {
  test("tables that keep a backlog through traffic keep their size, vacuumed every sixth round", async () => {
    const { db, ids } = await freshDatabase();
    // A backlog of 2,000 owed, then rounds of 300 sent and 300 settled.
    await traffic(db, ids, 2300);
    const after: Pages[] = [];
    for (let round = 1; round <= 96; round++) {
      await traffic(db, ids, 300);
      if (round % 6 === 0) expect(await vacuumTables(db)).toEqual(expect.arrayContaining(["acked_deliveries", "deliveries", "messages"]));
      after.push(await pages(db));
    }
    // Unvacuumed they grow by a round's pages every round (deliveries 134
    // pages at round 12, 980 at 120); vacuumed only when a file outgrew the
    // pages its last vacuum left, by a little more at each vacuum (119 at
    // round 24, 213 at 120). Vacuumed, the last half of the rounds stays
    // within what the first quarter took.
    for (const table of ["deliveries", "messages"] as const) {
      const largest = (from: number, to: number) => Math.max(...after.slice(from, to).map((p) => p[table]));
      const [firstQuarter, lastHalf] = [largest(0, 24), largest(48, 96)];
      expect({ table, firstQuarter, lastHalf, grew: lastHalf > firstQuarter }).toMatchObject({ grew: false });
    }
  });
});

describe("what vacuumTables vacuums", () => {
  test("nothing on a database idle since the last vacuum; a table with dead rows, and only it", async () => {
    const { db, ids } = await freshDatabase();
    await traffic(db, ids, 300);
    expect(await vacuumTables(db)).toEqual(expect.arrayContaining(["deliveries", "messages"]));
    expect(await vacuumTables(db)).toEqual([]);
    // The counts of dead rows are read as they are now, not as last flushed.
    await db.rows(sql`INSERT INTO hello_replays (signature, expires_at) VALUES ('k', now())`);
    await db.rows(sql`DELETE FROM hello_replays`);
    expect(await vacuumTables(db)).toEqual(["hello_replays"]);
  });

  test("dead rows left before the database was opened: the first vacuum of a process takes every table of the broker's", async () => {
    const { db: first, ids } = await freshDatabase();
    await traffic(first, ids, 300);
    await first.close();
    // Opened again, its counts of dead rows start from nought.
    db = await connect({ databaseUrl: "", dataDir: backend!.dataDir! });
    expect(await vacuumTables(db)).toEqual(expect.arrayContaining(["acked_deliveries", "deliveries", "messages"]));
    expect(await vacuumTables(db)).toEqual([]);
  });

  test("tables past the freeze age are frozen, the catalogs' too, so the database's oldest transaction moves on", async () => {
    const { db, ids } = await freshDatabase();
    // A hundred and twenty transactions, each of one statement.
    for (let i = 0; i < 30; i++) await traffic(db, ids, 1);
    const freezeAge = 10;
    expect(await vacuumTables(db, freezeAge)).toEqual(expect.arrayContaining(["pg_catalog.pg_class", "pg_catalog.pg_attribute", "deliveries"]));
    const [ages] = await db.rows<{ database: number; oldestTable: number }>(sql`
      SELECT (SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()) AS database,
             (SELECT max(age(relfrozenxid)) FROM pg_class WHERE relkind IN ('r', 't') AND relpersistence <> 't') AS "oldestTable"`);
    expect(ages!.database).toBeLessThanOrEqual(freezeAge);
    expect(ages!.oldestTable).toBeLessThanOrEqual(freezeAge);
  });
});

describe("an embedded broker", () => {
  test("vacuums its tables every six housekeeping intervals", async () => {
    backend = embeddedBackend({ withSchema: true });
    const broker = await spawnBroker({ ...backend.env, HOUSEKEEPING_INTERVAL_MS: "100", LOG_LEVEL: "debug" });
    started.push(broker);
    const first = await broker.waitForLog("tables vacuumed", 30_000);
    expect(first.tables).toBeArray();
    // And again: on a timer, not once.
    await broker.waitForLog("tables vacuumed", 30_000, (line) => line.time !== first.time);
  });
});
