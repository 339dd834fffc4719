// Prune: messages leave the database with their deliveries (ON DELETE
// CASCADE) once nobody can still receive them and the retention has passed.
// Until then a retried send with the same id is still recognised, and the
// delivery states stay visible.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

/** Messages expired longer than the retention ago, at most `limit`; returns how many went. */
export async function pruneExpiredMessages(db: Executor, retentionSeconds: number, limit: number): Promise<number> {
  const rows = await db.rows(sql`
    DELETE FROM messages WHERE id IN (
      SELECT id FROM messages WHERE expires_at < now() - make_interval(secs => ${retentionSeconds}) LIMIT ${limit})
    RETURNING id`);
  return rows.length;
}

/** Messages older than the retention that no recipient still owes an ack for; returns how many went. */
export async function pruneSettledMessages(db: Executor, retentionSeconds: number, limit: number): Promise<number> {
  const rows = await db.rows(sql`
    DELETE FROM messages WHERE id IN (
      SELECT m.id FROM messages m
      WHERE m.created_at < now() - make_interval(secs => ${retentionSeconds})
        AND NOT EXISTS (
          SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.state IN ('queued', 'leased'))
      LIMIT ${limit})
    RETURNING id`);
  return rows.length;
}
