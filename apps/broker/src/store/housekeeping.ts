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
