// What the executors run: a drizzle `sql` query, rendered at each call, or a
// statement rendered once and bound at each call (shapedStatement).
import { fillPlaceholders, is, SQL, sql, type Placeholder, type Query } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";

export type Statement = SQL | Query;

const dialect = new PgDialect();

/** The statement's text and its values, as both drivers take them. */
export function toQuery(statement: Statement): Query {
  return is(statement, SQL) ? dialect.sqlToQuery(statement) : statement;
}

/** A placeholder for the value named `name`, bound at each call. */
export type Slot<V> = (name: keyof V & string) => Placeholder;

/**
 * A statement the broker runs at every send or ack, whose text depends only
 * on its shape (a literal such as a batch's LIMIT): drizzle walks a query's
 * whole tree to render it, which for the send statement cost more of the
 * broker's time than anything else it did in JavaScript. Rendered once per
 * shape, a call only binds its values to their placeholders. The text, and
 * so the prepared statement, is the one the query would render to.
 */
export function shapedStatement<V extends object, S extends string | number = "">(
  build: (slot: Slot<V>, shape: S) => SQL,
): (values: V, ...shape: S extends "" ? [] : [S]) => Query {
  const rendered = new Map<S | "", Query>();
  const slot: Slot<V> = (name) => sql.placeholder(name);
  return (values, ...given) => {
    const shape = (given[0] ?? "") as S | "";
    let query = rendered.get(shape);
    if (query === undefined) {
      query = dialect.sqlToQuery(build(slot, shape as S));
      rendered.set(shape, query);
    }
    return { sql: query.sql, params: fillPlaceholders(query.params, values as Record<string, unknown>) };
  };
}
