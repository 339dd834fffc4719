// The plan Postgres makes for a store function's statement, as the broker's
// pool runs it: prepared, and planned generically when asked (a plain EXPLAIN
// of a statement with bound values plans for those values, whatever
// plan_cache_mode says). The function runs against an executor that records
// its statement and answers no rows; the statement is then prepared and
// EXPLAINed on a connection of its own (or the embedded database's one), in
// a transaction rolled back after.
// A generic plan is made at the statement's first run and kept: run once on
// the tables as they are, then filled, it shows what a plan made while the
// tables were empty reads once they are large.
import { PLANNER_SETTINGS, toQuery, type Database, type Executor, type Statement } from "@switchboard/db";
import { sql } from "drizzle-orm";
import postgres from "postgres";

export interface PlanOptions {
  /** Plan as the broker's pools do (PLANNER_SETTINGS: once, generically) rather than for these values. */
  generic?: boolean;
  /** Run it (EXPLAIN ANALYZE, BUFFERS): the plan then says how many buffers it read and how often each node ran. */
  analyze?: boolean;
  /** Settings of the pool that runs the statement (its startup parameters), set for the planning; they override `generic`. */
  settings?: Readonly<Record<string, string>>;
  /** Runs after the statement was planned and run once, before it is explained: a cached generic plan serves what this adds. */
  thenFill?: (tx: Executor) => Promise<void>;
}

/** A parameter as an SQL literal of unknown type, which EXECUTE casts to the prepared parameter's type. */
function literal(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "number" || typeof value === "boolean") return `'${String(value)}'`;
  if (typeof value === "string") return `'${value.replaceAll("'", "''")}'`;
  throw new Error(`planOf: a parameter of type ${typeof value} has no literal here`);
}

/**
 * The plan of the last statement `run` makes, as text: on a Postgres server
 * (its URL), on a connection of its own; on an embedded database, on its
 * one connection, whose own settings are the embedded broker's.
 */
export async function planOf(
  on: string | Database,
  run: (recorder: Executor) => Promise<unknown>,
  options: PlanOptions = {},
): Promise<string> {
  let statement: Statement | undefined;
  await run({ rows: async (query: Statement) => ((statement = query), []) });
  if (statement === undefined) throw new Error("the function ran no statement");
  const { sql: text, params } = toQuery(statement);
  const settings = { ...(options.generic ? PLANNER_SETTINGS : { plan_cache_mode: "auto" }), ...options.settings };
  const args = params.length === 0 ? "" : `(${params.map(literal).join(", ")})`;
  // Thrown with the plan, so that what an ANALYZE (or the fill) wrote is rolled back.
  const explain = async (tx: Executor): Promise<never> => {
    const unsafe = <T>(query: string) => tx.rows<T>(sql.raw(query));
    for (const [name, value] of Object.entries(settings)) await tx.rows(sql`SELECT set_config(${name}, ${value}, true)`);
    await unsafe(`PREPARE planned AS ${text}`);
    if (options.thenFill) {
      // Run to be planned, then undone, so that what it wrote cannot clash with the run explained.
      await unsafe("SAVEPOINT planned");
      await unsafe(`EXECUTE planned${args}`);
      await unsafe("ROLLBACK TO SAVEPOINT planned");
      await options.thenFill(tx);
    }
    const how = options.analyze ? "(ANALYZE, BUFFERS) " : "";
    const rows = await unsafe<{ "QUERY PLAN": string }>(`EXPLAIN ${how}EXECUTE planned${args}`);
    throw new Rollback(rows.map((r) => r["QUERY PLAN"]).join("\n"));
  };
  try {
    if (typeof on !== "string") {
      // A prepared statement outlives the transaction it was prepared in, and this session is the database's.
      try {
        await on.transaction(explain);
      } finally {
        const [prepared] = await on.rows(sql`SELECT 1 FROM pg_prepared_statements WHERE name = 'planned'`);
        if (prepared) await on.rows(sql`DEALLOCATE planned`);
      }
    } else {
      const raw = postgres(on, { max: 1, onnotice: () => {} });
      try {
        await raw.begin((tx) =>
          explain({
            rows: async <T>(query: Statement) => {
              const q = toQuery(query);
              return (await tx.unsafe(q.sql, q.params as postgres.ParameterOrJSON<never>[])) as unknown as T[];
            },
          }),
        );
      } finally {
        await raw.end();
      }
    }
    throw new Error("unreachable: the transaction always rolls back");
  } catch (error) {
    if (error instanceof Rollback) return error.plan;
    throw error;
  }
}

/**
 * A row count in an analyzed plan: whole before Postgres 18, with two
 * decimals since (the embedded database's), an average over the loops.
 */
export const COUNT = String.raw`\d+(?:\.\d+)?`;

/**
 * Rows the scans of `relation` ("deliveries", or "deliveries q" for those
 * aliased q, q_1, …) read in an analyzed plan: those they returned and those
 * their filters let go (each printed as an average over the scan's loops).
 * For a relation named without an alias, a bitmap scan counts the index
 * entries its bitmap index scans matched (an index is named after its
 * table), each a row it fetched, and not those rows again.
 */
export function rowsReadFrom(plan: string, relation: string): number {
  const scan = new RegExp(`Scan(?: Backward)?(?: using \\S+)? on ${relation}(?:_\\d+)?\\b.*actual time=\\S+ rows=(${COUNT}) loops=(\\d+)`);
  const bitmap = relation.includes(" ") ? null : new RegExp(`Bitmap Index Scan on ${relation}_\\w+ .*actual time=\\S+ rows=(${COUNT}) loops=(\\d+)`);
  const bitmapHeap = relation.includes(" ") ? null : new RegExp(`Bitmap Heap Scan on ${relation}(?:_\\d+)?\\b`);
  let onTable = false;
  let loops = 1;
  let read = 0;
  for (const line of plan.split("\n")) {
    if (/Scan/.test(line)) {
      const hit = bitmapHeap?.test(line) ? null : (scan.exec(line) ?? bitmap?.exec(line) ?? null);
      onTable = hit !== null;
      if (hit) {
        loops = Number(hit[2]);
        read += Number(hit[1]) * loops;
      }
    }
    const removed = new RegExp(`Rows Removed by Filter: (${COUNT})`).exec(line);
    if (removed && onTable) read += Number(removed[1]) * loops;
  }
  return read;
}

/** What an analyzed plan read from `tables` past `atMost` rows, with the plan to show it; null when within. */
export function readPast(plan: string, tables: readonly string[], atMost: number): { read: number; plan: string } | null {
  const read = tables.reduce((sum, table) => sum + rowsReadFrom(plan, table), 0);
  return read > atMost ? { read, plan } : null;
}

/**
 * Rows the filters and join filters of an analyzed plan let go, in all. A
 * node's count is an average over its loops, rounded: a few rows over many
 * loops may read as none.
 */
export function rowsRemoved(plan: string): number {
  let loops = 1;
  let removed = 0;
  for (const line of plan.split("\n")) {
    const node = /actual time=\S+ rows=\S+ loops=(\d+)/.exec(line);
    if (node) loops = Number(node[1]);
    const filtered = new RegExp(`Rows Removed by (?:Join )?Filter: (${COUNT})`).exec(line);
    if (filtered) removed += Number(filtered[1]) * loops;
  }
  return removed;
}

class Rollback extends Error {
  constructor(readonly plan: string) {
    super("rolled back");
  }
}

/** The settings a pool's connections asked for when they opened (their startup parameters), as planOf's `settings`. */
export async function poolSettings(pool: Executor): Promise<Record<string, string>> {
  const rows = await pool.rows<{ name: string; setting: string }>(sql`SELECT name, setting FROM pg_settings WHERE source = 'client'`);
  return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
}

/** The statement's own CTEs an analyzed plan scanned more than once, as "name ×loops": a join of them run as a nested loop. */
export function cteRescans(plan: string): string[] {
  return [...plan.matchAll(/CTE Scan on (\w+).*loops=(\d+)/g)].filter((m) => Number(m[2]) > 1).map((m) => `${m[1]} ×${m[2]}`);
}
