// The vacuum that pool-plans.test.ts plans on empty tables after must get a
// table to no pages from the state a busy machine left one in: a VACUUM that
// could not lock its last page (pinned, here by a cursor) left that page's
// dead rows, and every VACUUM after it prunes them to dead line pointers on
// one page of hundreds, leaves those in place and truncates nothing. A CI run
// kept the deliveries table so for minutes, and every test after failed.
import { describe, expect, test } from "bun:test";
import { backendKind } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { useBackendDatabase } from "./support/scratch-db.ts";
import { tableStatistics, vacuumToNoPages } from "./support/vacuum.ts";

const scratch = useBackendDatabase();

/** The block numbers of a table's live rows, and how many blocks it has. */
async function layout(): Promise<{ liveOn: number[]; blocks: number }> {
  const live = await scratch.db.rows<{ block: number }>(sql`SELECT (ctid::text::point)[0]::int AS block FROM pinned`);
  const [size] = await scratch.db.rows<{ blocks: number }>(
    sql`SELECT (pg_relation_size('pinned') / current_setting('block_size')::int)::int AS blocks`,
  );
  return { liveOn: live.map((r) => r.block), blocks: size!.blocks };
}

describe.skipIf(backendKind !== "postgres")("vacuumed to no pages", () => {
  test("from a last page a VACUUM could not prune, which plain VACUUMs leave as it is", async () => {
    await scratch.db.rows(sql`CREATE TABLE pinned (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false)`);
    // One connection of its own: its transactions span the statements below.
    const holder = postgres(scratch.backend.databaseUrl!, { max: 1, onnotice: () => {} });
    try {
      // Hundreds of pages of rows rolled back, and one live row on the last.
      await holder.unsafe("BEGIN; INSERT INTO pinned SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g; ROLLBACK").simple();
      await scratch.db.rows(sql`INSERT INTO pinned VALUES (0, 'live')`);
      const before = await layout();
      expect(before.blocks).toBeGreaterThan(100);
      expect(before.liveOn).toEqual([before.blocks - 1]);

      // A cursor on the live row pins the last page through a VACUUM.
      await holder.unsafe("BEGIN; DECLARE c CURSOR FOR SELECT * FROM pinned; FETCH 1 FROM c").simple();
      await scratch.db.rows(sql`VACUUM pinned`);
      await holder.unsafe("COMMIT");
    } finally {
      await holder.end();
    }
    await scratch.db.rows(sql`DELETE FROM pinned`);

    // Plain VACUUMs keep the table's pages: the state to get out of.
    for (let i = 0; i < 3; i++) await scratch.db.rows(sql`VACUUM ANALYZE pinned`);
    expect(await tableStatistics(scratch.db, ["pinned"])).toEqual([{ relname: "pinned", pages: true, reltuples: 0 }]);

    expect(await vacuumToNoPages(scratch.db, ["pinned"], 5_000)).toEqual([{ relname: "pinned", pages: false, reltuples: 0 }]);
  });
});
