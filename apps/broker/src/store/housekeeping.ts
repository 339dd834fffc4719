// Housekeeping statements: nothing here may grow without bound. (Messages
// and deliveries are pruned by the queue: queue/prune.ts.)
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

export async function pruneHelloReplays(db: Executor): Promise<void> {
  await db.rows(sql`DELETE FROM hello_replays WHERE expires_at < now()`);
}

export async function prunePendingSignals(db: Executor): Promise<void> {
  await db.rows(sql`DELETE FROM pending_hook_statuses WHERE expires_at < now()`);
}

// The rows a prune deletes are chosen through the index on their age, in
// that order, and deleted by id from an array: under a generic plan Postgres
// guesses that a third of the table is past any cutoff, and would read all
// of it to choose them, or hash it all to delete them (an IN of a subquery).

/**
 * Presences gone longer than the retention, at most `limit` a tick: after a
 * reconnect storm, or a long pause of housekeeping, there may be millions,
 * and one statement deleting them all would be one long transaction.
 */
export async function pruneGonePresences(db: Executor, retentionSeconds: number, limit: number): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    WITH gone AS (
      DELETE FROM presences WHERE id = ANY (ARRAY(
        SELECT id FROM presences WHERE disconnected_at < now() - make_interval(secs => ${retentionSeconds})
        ORDER BY disconnected_at
        LIMIT ${limit}))
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM gone`);
  return rows[0]?.n ?? 0;
}

export async function pruneStoppedInstances(db: Executor, retentionSeconds: number): Promise<void> {
  await db.rows(sql`
    DELETE FROM broker_instances WHERE stopped_at < now() - make_interval(secs => ${retentionSeconds})`);
}

export async function pruneAuditLog(db: Executor, retentionSeconds: number): Promise<void> {
  await db.rows(sql`
    DELETE FROM audit_log WHERE id = ANY (ARRAY(
      SELECT id FROM audit_log WHERE at < now() - make_interval(secs => ${retentionSeconds}) ORDER BY at LIMIT 10000))`);
}

/**
 * Vacuums every table of the database (the broker's and its migrations');
 * returns their names. For the embedded database, which runs no autovacuum
 * (it has no background workers): without it, the space of every row a send,
 * claim, ack or prune removed stays unusable, and the tables' files grow for
 * as long as the broker runs. Every table, every time: PGlite's counts of
 * dead rows, which autovacuum goes by, lag its writes (they are flushed now
 * and then), and a table's file measured against the pages its last vacuum
 * left misses a table that keeps live rows, whose file then grows by what it
 * takes between vacuums, a little more each time. (All of them with
 * nothing to reclaim take 10–12 ms.) One table a statement, so the texts the
 * embedded database keeps prepared stay one per table; not in a
 * transaction, where VACUUM cannot run.
 */
export async function vacuumTables(db: Executor): Promise<string[]> {
  const tables = await db.rows<{ schema: string; name: string }>(sql`
    SELECT schemaname AS schema, tablename AS name FROM pg_tables
    WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
    ORDER BY schemaname, tablename`);
  for (const { schema, name } of tables) await db.rows(sql`VACUUM ${sql.identifier(schema)}.${sql.identifier(name)}`);
  return tables.map(({ schema, name }) => (schema === "public" ? name : `${schema}.${name}`));
}
