// shapedStatement (packages/db): a statement rendered once per shape, whose
// values are bound at each call. Each call must run with its own values, on
// both drivers, and the rendering must not be repeated.
import { shapedStatement } from "@switchboard/db";
import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { useScratchDatabase } from "./support/scratch-db.ts";

const scratch = useScratchDatabase("shaped-statement");

describe("a shaped statement", () => {
  test("is rendered once per shape, and binds each call's values, a value named twice in both places", () => {
    const rendered: number[] = [];
    const statement = shapedStatement<{ a: number; b: string }, number>((slot, limit) => {
      rendered.push(limit);
      return sql`SELECT ${slot("a")}, ${slot("b")}, ${slot("a")} LIMIT ${sql.raw(String(limit))}`;
    });
    const first = statement({ a: 1, b: "x" }, 4);
    const second = statement({ a: 2, b: "y" }, 4);
    const other = statement({ a: 3, b: "z" }, 8);
    expect(rendered).toEqual([4, 8]);
    expect(first).toEqual({ sql: "SELECT $1, $2, $3 LIMIT 4", params: [1, "x", 1] });
    expect(second).toEqual({ sql: "SELECT $1, $2, $3 LIMIT 4", params: [2, "y", 2] });
    expect(other).toEqual({ sql: "SELECT $1, $2, $3 LIMIT 8", params: [3, "z", 3] });
  });

  test("keeps the values written into its text as they were", () => {
    const statement = shapedStatement<{ a: number }>((slot) => sql`SELECT ${slot("a")} + ${5}`);
    expect(statement({ a: 1 })).toEqual({ sql: "SELECT $1 + $2", params: [1, 5] });
    expect(statement({ a: 2 })).toEqual({ sql: "SELECT $1 + $2", params: [2, 5] });
  });

  test("refuses a call without a value its text needs", () => {
    const statement = shapedStatement<{ a: number; b: number }>((slot) => sql`SELECT ${slot("a")}, ${slot("b")}`);
    expect(() => statement({ a: 1 } as { a: number; b: number })).toThrow('No value for placeholder "b"');
  });

  test("runs with each call's own values on the database, as a prepared statement", async () => {
    const statement = shapedStatement<{ a: number; ids: string }>(
      (slot) => sql`SELECT ${slot("a")}::int * 2 AS doubled, (SELECT count(*) FROM jsonb_array_elements(${slot("ids")}::text::jsonb))::int AS ids`,
    );
    for (const a of [1, 2, 3]) {
      const [row] = await scratch.db.rows<{ doubled: number; ids: number }>(statement({ a, ids: JSON.stringify(Array(a).fill("id")) }));
      expect(row).toEqual({ doubled: a * 2, ids: a });
    }
  });
});
