// The bound on a member's queue: members.queue_full_at marks those whose
// queued deliveries number MAX_QUEUED_PER_MEMBER or more, and the send
// statement writes them nothing while it is set (routing.ts). Counting a
// recipient's queue in every send would read up to the bound's worth of
// index entries per delivery, and a counter row per member would be one row
// every send and ack to that member waits for; a sweep marks them instead,
// so a queue can pass the bound by what its senders send between two sweeps.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

export interface FullQueues {
  /** Members marked full by this sweep. */
  filled: string[];
  /** Members whose mark this sweep cleared: their queue is below the bound again. */
  drained: string[];
  /** Members whose queue is at the bound or over it now. */
  full: number;
}

/**
 * Marks the members whose queue holds `maxQueued` deliveries or more, and
 * clears the mark of those whose queue went below it. The queue is counted
 * through the index of queued deliveries alone. Rows another transaction
 * holds (another instance's sweep, an admin's change) are skipped: the next
 * sweep gets them.
 */
export async function markFullQueues(db: Executor, maxQueued: number): Promise<FullQueues> {
  const rows = await db.rows<{ filled: string; drained: string; full: number }>(sql`
    WITH over AS (
      SELECT recipient_member_id AS id FROM deliveries
      WHERE state = 'queued'
      GROUP BY recipient_member_id
      HAVING count(*) >= ${maxQueued}
    ),
    -- Whether a member fills is its count's to say, not its mark's: a mark
    -- another sweep set after this one's snapshot is then left alone below.
    changing AS (
      SELECT m.id, m.id IN (SELECT id FROM over) AS fills FROM members m
      WHERE m.id IN (
        SELECT o.id FROM over o JOIN members f ON f.id = o.id WHERE f.queue_full_at IS NULL
        UNION ALL
        SELECT c.id FROM members c WHERE c.queue_full_at IS NOT NULL AND c.id NOT IN (SELECT id FROM over))
      ORDER BY m.id
      FOR UPDATE SKIP LOCKED
    ),
    changed AS (
      UPDATE members m SET queue_full_at = CASE WHEN c.fills THEN now() END
      FROM changing c WHERE m.id = c.id AND (m.queue_full_at IS NULL) = c.fills
      RETURNING m.id, c.fills
    )
    SELECT coalesce((SELECT json_agg(id) FROM changed WHERE fills), '[]')::text AS filled,
           coalesce((SELECT json_agg(id) FROM changed WHERE NOT fills), '[]')::text AS drained,
           (SELECT count(*) FROM over)::int AS full`);
  const row = rows[0];
  return {
    filled: row ? (JSON.parse(row.filled) as string[]) : [],
    drained: row ? (JSON.parse(row.drained) as string[]) : [],
    full: row?.full ?? 0,
  };
}
