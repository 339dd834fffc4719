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
import { isoInstant, uuidArray } from "../sql.ts";

export interface Retention {
  /** How long a settled (or expired) message is kept, so a retried send stays idempotent. */
  settledSeconds: number;
  /** How long a channel message is kept for history. */
  historySeconds: number;
}

/** Where each kind's walk starts: the created_at an earlier walk reached, or null for the oldest message. */
export interface PruneFrom {
  direct: string | null;
  channel: string | null;
}

/** Walks from the oldest message of each kind. */
export const FROM_THE_OLDEST: PruneFrom = { direct: null, channel: null };

export interface Pruned {
  removed: number;
  /** Where the next walks may start: each walk's cutoff, or the last message it took when it took its limit. */
  next: PruneFrom;
}

// The oldest messages of one kind past `keptSeconds` and created at or after
// `from`, through that kind's created_at index (schema.ts), so a tick reads
// the messages past their retention, not the table: those no recipient still
// owes an ack for, or expired longer than the settled retention ago, go.
// Those still owed stay behind a walk that passed them (an offline member's
// backlog, kept for its TTL): a tick that starts where the last one ended
// does not read them again, a walk from the oldest does. Rows another
// transaction holds (another instance's prune, a request's reply wait set
// or ended, queue/reply.ts) are skipped, not waited for: the walk from the
// oldest finds them. The owed check is one probe of the message's
// deliveries per message read (OFFSET 0 keeps it so): under a generic plan
// Postgres would otherwise hash every owed delivery of the table, reading
// all of them, on every tick.
const prunable = (kind: SQL, keptSeconds: number, from: string | null, retention: Retention, limit: number): SQL => sql`
  SELECT m.id, m.created_at FROM messages m
  WHERE ${kind} AND m.created_at < now() - make_interval(secs => ${keptSeconds})
    AND m.created_at >= coalesce(${from}::timestamptz, '-infinity')
    AND (m.expires_at < now() - make_interval(secs => ${retention.settledSeconds})
         OR NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.state IN ('queued', 'leased') OFFSET 0))
  ORDER BY m.created_at
  LIMIT ${limit}
  FOR UPDATE SKIP LOCKED`;

// How far a walk read: to its cutoff when it took fewer than its limit;
// else to the last message it took, at which the next walk starts again
// (`>=`: those created at that same instant that it did not take).
const walkedTo = (walk: SQL, keptSeconds: number, limit: number): SQL => sql`
  CASE WHEN (SELECT count(*) FROM ${walk}) < ${limit} THEN now() - make_interval(secs => ${keptSeconds})
       ELSE (SELECT max(created_at) FROM ${walk}) END`;

interface Walked {
  ids: string[];
  directNext: string;
  channelNext: string;
}

/**
 * Messages past their retention, at most `limit` direct and `limit` channel
 * ones, each kind walked from where `from` says; returns how many went and
 * where the next walks may start. A message passed while owed is left to a
 * later walk from the oldest (FROM_THE_OLDEST), which the caller makes now
 * and then. Two statements in one transaction: the first locks the messages
 * and deletes their deliveries, the second their acknowledged deliveries and
 * the messages. An ack under way moves a delivery without locking its
 * message: the first statement's delete waits for that ack to commit (and
 * then finds the row gone), and only a later statement's snapshot sees the
 * row the ack wrote to acked_deliveries. In one statement it was left behind
 * with no message.
 */
export async function pruneMessages(
  db: Pick<Database, "transaction">,
  retention: Retention,
  limit: number,
  from: PruneFrom = FROM_THE_OLDEST,
): Promise<Pruned> {
  const channelKept = Math.max(retention.settledSeconds, retention.historySeconds);
  return db.transaction(async (tx) => {
    const [walked] = await tx.rows<Walked>(sql`
      WITH direct AS (${prunable(sql`m.target_spec NOT LIKE '#%'`, retention.settledSeconds, from.direct, retention, limit)}),
      channel AS (${prunable(sql`m.target_spec LIKE '#%'`, channelKept, from.channel, retention, limit)}),
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
      SELECT ids::text[] AS ids,
             ${isoInstant(walkedTo(sql`direct`, retention.settledSeconds, limit))} AS "directNext",
             ${isoInstant(walkedTo(sql`channel`, channelKept, limit))} AS "channelNext"
      FROM ids`);
    // No row only from an executor that answers none (the plan tests' recorder): ids makes one.
    if (walked === undefined) return { removed: 0, next: from };
    const next: PruneFrom = { direct: walked.directNext, channel: walked.channelNext };
    if (walked.ids.length === 0) return { removed: 0, next };
    const rows = await tx.rows<{ n: number }>(sql`
      WITH ids AS MATERIALIZED (SELECT ${uuidArray(walked.ids)} AS ids),
      gone_acked AS (
        DELETE FROM acked_deliveries WHERE message_id = ANY ((SELECT ids FROM ids)::uuid[])
      ),
      gone AS (
        DELETE FROM messages WHERE id = ANY ((SELECT ids FROM ids)::uuid[])
        RETURNING 1
      )
      SELECT count(*)::int AS n FROM gone`);
    return { removed: rows[0]?.n ?? 0, next };
  });
}
