// How the plan tests count what an analyzed plan read (support/plans.ts), on
// plans as Postgres 15 and Postgres 18 (the embedded database) print them:
// a scan's rows and the rows its filter let go are averages over its loops.
import { expect, test } from "bun:test";
import { rowsReadFrom, rowsRemoved } from "./support/plans.ts";

const postgres15 = `Nested Loop  (cost=0.29..16.40 rows=1 width=8) (actual time=0.050..0.300 rows=3 loops=1)
  ->  Function Scan on jsonb_to_recordset a  (cost=0.00..1.00 rows=100 width=32) (actual time=0.010..0.011 rows=3 loops=1)
  ->  Index Scan using deliveries_lease_presence_idx on deliveries d  (cost=0.29..8.31 rows=1 width=8) (actual time=0.020..0.090 rows=1 loops=3)
        Index Cond: (lease_presence_id = a.id)
        Filter: (lease_expires_at < now())
        Rows Removed by Filter: 100`;

const postgres18 = postgres15.replaceAll(/rows=(\d+) loops/g, "rows=$1.00 loops");

test.each([
  ["Postgres 15", postgres15],
  ["Postgres 18", postgres18],
])("a scan run in three loops read three times what it printed (%s)", (_, plan) => {
  // Returned: 1 a loop; let go by its filter: 100 a loop.
  expect(rowsReadFrom(plan, "deliveries")).toBe(3 * 1 + 3 * 100);
  expect(rowsRemoved(plan)).toBe(3 * 100);
});

test("the Postgres 18 plan above prints its counts with decimals", () => {
  expect(postgres18).toContain("rows=1.00 loops=3");
});

test("a backward index scan counts as a scan of its table", () => {
  const plan = `Limit  (cost=0.29..8.31 rows=1 width=8) (actual time=0.020..0.030 rows=2 loops=1)
  ->  Index Scan Backward using messages_channel_history_idx on messages m  (cost=0.29..8.31 rows=1 width=8) (actual time=0.020..0.030 rows=2 loops=1)
        Index Cond: ((mesh_id = $1) AND (target_spec = $2))
        Filter: (created_at > now())
        Rows Removed by Filter: 40`;
  expect(rowsReadFrom(plan, "messages")).toBe(2 + 40);
});
