// The plan Postgres makes for a store function's statement, as the broker's
// pool runs it: prepared, and planned generically when asked (a plain EXPLAIN
// of a statement with bound values plans for those values, whatever
// plan_cache_mode says). The function runs against an executor that records
// its statement and answers no rows; the statement is then prepared and
// EXPLAINed on a connection of its own, in a transaction rolled back after.
import type { Executor } from "@switchboard/db";
import type { SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import postgres from "postgres";

export interface PlanOptions {
  /** Plan as the main pool does (force_generic_plan) rather than for these values. */
  generic?: boolean;
  /** Run it (EXPLAIN ANALYZE, BUFFERS): the plan then says how many buffers it read and how often each node ran. */
  analyze?: boolean;
}

/** A parameter as an SQL literal of unknown type, which EXECUTE casts to the prepared parameter's type. */
function literal(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "number" || typeof value === "boolean") return `'${String(value)}'`;
  if (typeof value === "string") return `'${value.replaceAll("'", "''")}'`;
  throw new Error(`planOf: a parameter of type ${typeof value} has no literal here`);
}

/** The plan of the last statement `run` makes, as text. */
export async function planOf(databaseUrl: string, run: (recorder: Executor) => Promise<unknown>, options: PlanOptions = {}): Promise<string> {
  let statement: SQL | undefined;
  await run({ rows: async (query: SQL) => ((statement = query), []) });
  if (statement === undefined) throw new Error("the function ran no statement");
  const { sql: text, params } = new PgDialect().sqlToQuery(statement);
  const raw = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    // Thrown with the plan, so that what an ANALYZE wrote is rolled back.
    await raw.begin(async (tx) => {
      await tx.unsafe(`SET LOCAL plan_cache_mode = ${options.generic ? "force_generic_plan" : "auto"}`);
      await tx.unsafe(`PREPARE planned AS ${text}`);
      const args = params.length === 0 ? "" : `(${params.map(literal).join(", ")})`;
      const how = options.analyze ? "(ANALYZE, BUFFERS) " : "";
      const rows = await tx.unsafe<Array<{ "QUERY PLAN": string }>>(`EXPLAIN ${how}EXECUTE planned${args}`);
      throw new Rollback(rows.map((r) => r["QUERY PLAN"]).join("\n"));
    });
    throw new Error("unreachable: the transaction always rolls back");
  } catch (error) {
    if (error instanceof Rollback) return error.plan;
    throw error;
  } finally {
    await raw.end();
  }
}

/**
 * Rows the scans of `relation` ("deliveries", or "deliveries q" for those
 * aliased q, q_1, …) read in an analyzed plan: those they returned
 * (rows × loops) and those their filters let go.
 */
export function rowsReadFrom(plan: string, relation: string): number {
  const scan = new RegExp(`Scan(?: using \\S+)? on ${relation}(?:_\\d+)?\\b.*actual time=\\S+ rows=(\\d+) loops=(\\d+)`);
  let onTable = false;
  let read = 0;
  for (const line of plan.split("\n")) {
    if (/Scan/.test(line)) {
      const hit = scan.exec(line);
      onTable = hit !== null;
      if (hit) read += Number(hit[1]) * Number(hit[2]);
    }
    const removed = /Rows Removed by Filter: (\d+)/.exec(line);
    if (removed && onTable) read += Number(removed[1]);
  }
  return read;
}

class Rollback extends Error {
  constructor(readonly plan: string) {
    super("rolled back");
  }
}
