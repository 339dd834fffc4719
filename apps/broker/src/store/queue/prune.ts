// Prune: messages leave the database with their deliveries, owed and
// acknowledged (deleted in the same transaction: there is no foreign key to
// cascade, schema.ts) once nobody can still receive them and the retention
// has passed.
// Until then a retried send with the same id is still recognised, and the
// delivery states stay visible. A channel message is also channel history:
// it stays, acknowledged or expired, until it is older than the history
// retention (HISTORY_RETENTION_SECONDS).
import type { Database } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";
import { uuidArray } from "../sql.ts";

export interface Retention {
  /** How long a settled (or expired) message is kept, so a retried send stays idempotent. */
  settledSeconds: number;
  /** How long a channel message is kept for history. */
  historySeconds: number;
}

// The oldest messages of one kind past `keptSeconds`, through that kind's
// created_at index (schema.ts), so a tick reads the messages past their
// retention, not the table: those no recipient still owes an ack for, or
// expired longer than the settled retention ago, go. (Those still owed are
// read again each tick until they go: an offline member's backlog.) Rows
// another instance's prune holds are skipped, not waited for. The owed check
// is one probe of the message's deliveries per message read (OFFSET 0 keeps
// it so): under a generic plan Postgres would otherwise hash every owed
// delivery of the table, reading all of them, on every tick.
const prunable = (kind: SQL, keptSeconds: number, retention: Retention, limit: number): SQL => sql`
  SELECT m.id FROM messages m
  WHERE ${kind} AND m.created_at < now() - make_interval(secs => ${keptSeconds})
    AND (m.expires_at < now() - make_interval(secs => ${retention.settledSeconds})
         OR NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.state IN ('queued', 'leased') OFFSET 0))
  ORDER BY m.created_at
  LIMIT ${limit}
  FOR UPDATE SKIP LOCKED`;

/**
 * Messages past their retention, at most `limit` direct and `limit` channel
 * ones; returns how many went. Two statements in one transaction: the first
 * locks the messages and deletes their deliveries, the second their
 * acknowledged deliveries and the messages. An ack under way moves a
 * delivery without locking its message: the first statement's delete waits
 * for that ack to commit (and then finds the row gone), and only a later
 * statement's snapshot sees the row the ack wrote to acked_deliveries. In
 * one statement it was left behind with no message.
 */
export async function pruneMessages(db: Pick<Database, "transaction">, retention: Retention, limit: number): Promise<number> {
  const channelKept = Math.max(retention.settledSeconds, retention.historySeconds);
  return db.transaction(async (tx) => {
    const [locked] = await tx.rows<{ ids: string[] }>(sql`
      WITH direct AS (${prunable(sql`m.target_spec NOT LIKE '#%'`, retention.settledSeconds, retention, limit)}),
      channel AS (${prunable(sql`m.target_spec LIKE '#%'`, channelKept, retention, limit)}),
      -- = ANY of an array: an IN of the subquery is planned as a hash join
      -- over the whole table under a generic plan. (The cast makes the
      -- subquery one array value, not a set of rows for ANY to compare with.)
      ids AS MATERIALIZED (
        SELECT ARRAY(SELECT id FROM direct UNION ALL SELECT id FROM channel) AS ids
      ),
      -- Deliveries are written only with their message (enqueue.ts), so none
      -- can join these once their messages are locked.
      gone_deliveries AS (
        DELETE FROM deliveries WHERE message_id = ANY ((SELECT ids FROM ids)::uuid[])
      )
      SELECT ids::text[] AS ids FROM ids`);
    const ids = locked?.ids ?? [];
    if (ids.length === 0) return 0;
    const rows = await tx.rows<{ n: number }>(sql`
      WITH ids AS MATERIALIZED (SELECT ${uuidArray(ids)} AS ids),
      gone_acked AS (
        DELETE FROM acked_deliveries WHERE message_id = ANY ((SELECT ids FROM ids)::uuid[])
      ),
      gone AS (
        DELETE FROM messages WHERE id = ANY ((SELECT ids FROM ids)::uuid[])
        RETURNING 1
      )
      SELECT count(*)::int AS n FROM gone`);
    return rows[0]?.n ?? 0;
  });
}
