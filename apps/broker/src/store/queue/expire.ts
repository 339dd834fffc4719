// Expire: queued → expired, once the message outlived its TTL unacknowledged.
// A leased delivery expires after its lease ends (requeue, then here), so an
// ack already on its way still counts.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

/**
 * Returns how many deliveries expired, the longest past their time first.
 * They are found by the index of queued deliveries by expiry (schema.ts),
 * which holds nothing a sweep expired already, and in its order: without
 * it, a plan made while the statistics said the table was empty walked a
 * member's queue index, every queued delivery (pool-plans.test.ts). They are
 * updated by their ids: joined, such a plan walked every delivery for each.
 * Starting from the messages past their time instead read each of them
 * again on every tick until the prune removed it.
 */
export async function expireDeliveries(db: Executor, limit: number): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    WITH expired AS (
      UPDATE deliveries d SET state = 'expired'
      WHERE d.id = ANY (ARRAY(
        SELECT id FROM deliveries
        WHERE state = 'queued' AND expires_at < now()
        ORDER BY expires_at LIMIT ${limit}
        FOR UPDATE SKIP LOCKED))
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM expired`);
  return rows[0]?.n ?? 0;
}
