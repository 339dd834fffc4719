// The plan Postgres makes for a store function's statement: the function runs
// against an executor that only records its statement, which is then
// EXPLAINed on a connection of its own — under a generic plan when asked, as
// the broker's pool plans its prepared statements.
import type { Executor } from "@switchboard/db";
import type { SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import postgres from "postgres";

export async function planOf(
  databaseUrl: string,
  run: (recorder: Executor) => Promise<unknown>,
  options: { generic?: boolean } = {},
): Promise<string> {
  let statement: SQL | undefined;
  await run({ rows: async (query: SQL) => ((statement = query), []) });
  if (statement === undefined) throw new Error("the function ran no statement");
  const { sql: text, params } = new PgDialect().sqlToQuery(statement);
  const connection = options.generic ? { plan_cache_mode: "force_generic_plan" } : {};
  const raw = postgres(databaseUrl, { max: 1, onnotice: () => {}, connection });
  try {
    const rows = await raw.unsafe<Array<{ "QUERY PLAN": string }>>(`EXPLAIN ${text}`, params as never[]);
    return rows.map((r) => r["QUERY PLAN"]).join("\n");
  } finally {
    await raw.end();
  }
}
