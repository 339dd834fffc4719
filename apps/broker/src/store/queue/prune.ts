// Prune: messages leave the database with their deliveries (ON DELETE
// CASCADE) once nobody can still receive them and the retention has passed.
// Until then a retried send with the same id is still recognised, and the
// delivery states stay visible. A channel message is also channel history:
// it stays, acknowledged or expired, until it is older than the history
// retention (HISTORY_RETENTION_SECONDS).
import type { Executor } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";

export interface Retention {
  /** How long a settled (or expired) message is kept, so a retried send stays idempotent. */
  settledSeconds: number;
  /** How long a channel message is kept for history. */
  historySeconds: number;
}

const pastHistory = (historySeconds: number): SQL =>
  sql`(m.target_spec NOT LIKE '#%' OR m.created_at < now() - make_interval(secs => ${historySeconds}))`;

/** Messages expired longer than the retention ago, at most `limit`; returns how many went. */
export async function pruneExpiredMessages(db: Executor, retention: Retention, limit: number): Promise<number> {
  const rows = await db.rows(sql`
    DELETE FROM messages WHERE id IN (
      SELECT m.id FROM messages m
      WHERE m.expires_at < now() - make_interval(secs => ${retention.settledSeconds})
        AND ${pastHistory(retention.historySeconds)}
      LIMIT ${limit})
    RETURNING id`);
  return rows.length;
}

/** Messages older than the retention that no recipient still owes an ack for; returns how many went. */
export async function pruneSettledMessages(db: Executor, retention: Retention, limit: number): Promise<number> {
  const rows = await db.rows(sql`
    DELETE FROM messages WHERE id IN (
      SELECT m.id FROM messages m
      WHERE m.created_at < now() - make_interval(secs => ${retention.settledSeconds})
        AND ${pastHistory(retention.historySeconds)}
        AND NOT EXISTS (
          SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.state IN ('queued', 'leased'))
      LIMIT ${limit})
    RETURNING id`);
  return rows.length;
}
