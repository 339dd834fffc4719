// The bound on a member's queue: members.queue_full_at marks those whose
// queued deliveries number MAX_QUEUED_PER_MEMBER or more, and the send
// statement writes them nothing while it is set (routing.ts). Counting a
// recipient's queue in every send would read up to the bound's worth of
// index entries per delivery, and a counter row per member would be one row
// every send and ack to that member waits for; a sweep marks them instead,
// so a queue can pass the bound by what its senders send between two sweeps.
// The sweep also counts the queue's depth (broker_queue_depth): it reads
// every queued delivery's index entry already, and a count of its own would
// read them all again on every instance each interval.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

export interface FullQueues {
  /** Members marked full by this sweep. */
  filled: string[];
  /** Members whose mark this sweep cleared: their queue is below the bound again. */
  drained: string[];
  /** Members whose queue is at the bound or over it now. */
  full: number;
  /** Deliveries not yet acknowledged, over all recipients: queued and leased. */
  depth: number;
}

/**
 * Marks the members whose queue holds `maxQueued` deliveries or more, and
 * clears the mark of those whose queue went below it; counts the queue's
 * depth from the same walk. The queue is counted through the index of queued
 * deliveries alone, the leased ones through theirs. Rows another transaction
 * holds (another instance's sweep, an admin's change) are skipped: the next
 * sweep gets them.
 */
export async function markFullQueues(db: Executor, maxQueued: number): Promise<FullQueues> {
  const rows = await db.rows<{ filled: string; drained: string; full: number; depth: number }>(sql`
    WITH queues AS (
      SELECT recipient_member_id AS id, count(*) AS queued FROM deliveries
      WHERE state = 'queued'
      GROUP BY recipient_member_id
    ),
    over AS (
      SELECT id FROM queues WHERE queued >= ${maxQueued}
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
           (SELECT count(*) FROM over)::int AS full,
           ((SELECT coalesce(sum(queued), 0) FROM queues)
            + (SELECT count(*) FROM deliveries WHERE state = 'leased'))::int AS depth`);
  const row = rows[0];
  return {
    filled: row ? (JSON.parse(row.filled) as string[]) : [],
    drained: row ? (JSON.parse(row.drained) as string[]) : [],
    full: row?.full ?? 0,
    depth: row?.depth ?? 0,
  };
}
