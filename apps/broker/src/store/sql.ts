// Small pieces of SQL the store modules share.
import { sql, type Placeholder, type SQL } from "drizzle-orm";

/** A JSON value bound as one text parameter; drizzle would expand a JS array into a list. */
export function jsonParam(value: unknown): SQL {
  return jsonText(JSON.stringify(value));
}

/**
 * JSON text, or a placeholder a shaped statement binds to JSON text
 * (JSON.stringify), as jsonb; or as json, for a reader that converts fields
 * as it parses (json_to_recordset) and needs no jsonb value built first.
 */
export function jsonText(text: string | Placeholder, as: "jsonb" | "json" = "jsonb"): SQL {
  return as === "json" ? sql`${text}::text::json` : sql`${text}::text::jsonb`;
}

/** A JSON array of uuids bound as one parameter, as a uuid[] the planner can probe an index with. */
export function uuidArray(ids: readonly string[]): SQL {
  return uuidArrayOf(jsonParam(ids));
}

/** As uuidArray, of a jsonb array of uuids. */
export function uuidArrayOf(json: SQL): SQL {
  return sql`ARRAY(SELECT jsonb_array_elements_text(${json})::uuid)`;
}

/**
 * The same ids as a relation (id), said by a literal LIMIT to hold few rows,
 * to drive a lateral probe of each by its key (`… CROSS JOIN LATERAL (… WHERE
 * id = x.id OFFSET 0)`): as `id = ANY (…)`, a plan made while the statistics
 * said the table was empty could walk another index whole instead.
 */
export function uuidRows(ids: readonly string[]): SQL {
  return sql`(SELECT jsonb_array_elements_text(${jsonParam(ids)})::uuid AS id LIMIT ${batchLimit(ids.length)})`;
}

/** ISO-8601 UTC text of a timestamptz column, the same on both drivers. */
export function isoTime(column: string): SQL {
  return sql.raw(`to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`);
}

/** ISO-8601 UTC text of a timestamptz expression to the microsecond: read back as a timestamptz, the same instant whatever the session's DateStyle and TimeZone. */
export function isoInstant(expression: SQL): SQL {
  return sql`to_char((${expression}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

/** Milliseconds from a timestamp column to the statement's now(), as float8. */
export function ageMs(column: string): SQL {
  return sql.raw(`(extract(epoch FROM now() - ${column}) * 1000)::float8`);
}

/**
 * `LIMIT` for a batch of n JSON rows, as a literal rounded up to a power of
 * two. Under a generic plan a bound LIMIT is assumed to keep a tenth of the
 * function's estimated 100 rows, and the CTEs built on it are planned for a
 * handful of rows, joined by nested loops that grow with the square of the
 * batch; a literal lets the estimate stay at min(n, 100), where the planner
 * hashes (and rounding keeps the prepared variants of a statement to a dozen).
 */
export function batchLimit(n: number): SQL {
  return sql.raw(String(batchShape(n)));
}

/** The power of two batchLimit rounds n up to: the shape of a shaped batch statement (shapedStatement). */
export function batchShape(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

/**
 * The uuid `column` of the row of the relation `rows` (with an id column)
 * whose id is the expression `id`. For an update that names its rows by id in
 * a list (`id = ANY (ARRAY(…))`) rather than joining them back to their table
 * (which a plan made while the statistics said the table was empty walked
 * whole: pool-plans.test.ts), and needs a value of the batch for each row:
 * the relation becomes one JSON object, built once, read by key per row.
 */
export function uuidById(rows: string, column: string, id: string): SQL {
  return sql.raw(`((SELECT jsonb_object_agg(${rows}.id::text, ${rows}.${column}) FROM ${rows}) ->> ${id}::text)::uuid`);
}

export { UUID } from "@switchboard/protocol";

export const unique = <T>(values: Iterable<T>): T[] => [...new Set(values)];
