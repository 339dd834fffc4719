// Tables vacuumed until the statistics say they have no pages, as a quiet
// deployment's are once pruned, for tests that plan statements then.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

export interface TableStatistics {
  relname: string;
  pages: boolean;
  reltuples: number;
}

/** What pg_class says of `tables`: whether each has pages, and its row estimate; by name. */
export function tableStatistics(db: Executor, tables: readonly string[]): Promise<TableStatistics[]> {
  return db.rows<TableStatistics>(
    sql`SELECT relname::text, relpages > 0 AS pages, reltuples FROM pg_class
        WHERE relkind = 'r' AND relname IN (${sql.join(
          tables.map((t) => sql`${t}`),
          sql`, `,
        )})
        ORDER BY relname`,
  );
}

/**
 * VACUUM ANALYZE `tables` again until none has pages, for `withinMs` at most;
 * their statistics as the last one left them (a caller's check then says
 * which kept pages). A VACUUM gives up truncating a table while another
 * session holds a lock on it, and leaves a page it cannot lock (pinned by
 * another backend, a checkpoint's write among them) as it was.
 *
 * INDEX_CLEANUP ON: by default a VACUUM leaves the dead line pointers it
 * finds on under 2 % of a table's pages in place, and a page holding them is
 * not truncated. A page once left unpruned near the table's end is then kept
 * by every later VACUUM, and every page before it with it.
 */
export async function vacuumToNoPages(db: Executor, tables: readonly string[], withinMs = 15_000): Promise<TableStatistics[]> {
  const names = sql.join(
    tables.map((t) => sql.identifier(t)),
    sql`, `,
  );
  const deadline = Date.now() + withinMs;
  for (;;) {
    await db.rows(sql`VACUUM (INDEX_CLEANUP ON, ANALYZE) ${names}`);
    const statistics = await tableStatistics(db, tables);
    if (statistics.every((t) => !t.pages) || Date.now() >= deadline) return statistics;
    await Bun.sleep(200);
  }
}
