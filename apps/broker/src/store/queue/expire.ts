// Expire: queued → expired, once the message outlived its TTL unacknowledged.
// A leased delivery expires after its lease ends (requeue, then here), so an
// ack already on its way still counts.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

/**
 * Returns how many deliveries expired. Messages are found by their expiry
 * index, and each one's deliveries by the index of (message, recipient);
 * the rows found are then updated by their ids. Joined, a plan made while
 * the statistics said the tables were empty walked every delivery, and for
 * each every message and delivery again: minutes for one sweep of 20,000
 * deliveries (pool-plans.test.ts). The state is tested in a form no index's
 * condition matches: as `state = 'queued'`, the index of the queue matched,
 * and a plan made so walked all of the queue for each message.
 */
export async function expireDeliveries(db: Executor, limit: number): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    WITH expired AS (
      UPDATE deliveries d SET state = 'expired'
      WHERE d.id = ANY (ARRAY(
        SELECT q.id
        FROM (SELECT id FROM messages WHERE expires_at < now() OFFSET 0) m
        CROSS JOIN LATERAL (
          SELECT id FROM deliveries
          WHERE message_id = m.id AND CASE WHEN state = 'queued' THEN true ELSE false END
          FOR UPDATE SKIP LOCKED) q
        LIMIT ${limit}))
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM expired`);
  return rows[0]?.n ?? 0;
}
