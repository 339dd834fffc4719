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
 * Vacuums each table of the broker's whose file grew since it was last
 * vacuumed (past the pages VACUUM recorded for it); returns their names. For
 * the embedded database, which runs no autovacuum (it has no background
 * workers): without it, every row version a send, claim, ack or prune leaves
 * behind stays in its table, whose file grows for as long as the broker
 * runs. Its counts of dead rows, which autovacuum goes by, are not kept up to
 * date there (they stood still at one figure through minutes of traffic);
 * a table whose rows went without a vacuum grows as soon as rows come again,
 * since only a vacuum makes their space reusable. One table a statement, so
 * that the texts the embedded database keeps prepared stay one per table.
 */
export async function vacuumGrownTables(db: Executor): Promise<string[]> {
  const grown = await db.rows<{ schema: string; name: string }>(sql`
    SELECT n.nspname AS schema, c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND pg_relation_size(c.oid) > c.relpages::bigint * current_setting('block_size')::bigint
    ORDER BY n.nspname, c.relname`);
  for (const { schema, name } of grown) await db.rows(sql`VACUUM ${sql.identifier(schema)}.${sql.identifier(name)}`);
  return grown.map(({ schema, name }) => (schema === "public" ? name : `${schema}.${name}`));
}
