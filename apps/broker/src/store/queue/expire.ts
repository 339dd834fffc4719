// Expire: queued → expired, once the message outlived its TTL unacknowledged.
// A leased delivery expires after its lease ends (requeue, then here), so an
// ack already on its way still counts.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

/** Returns how many deliveries expired. Messages are found by their expiry index. */
export async function expireDeliveries(db: Executor, limit: number): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    WITH expired AS (
      UPDATE deliveries SET state = 'expired'
      WHERE id IN (
        SELECT d.id FROM messages m JOIN deliveries d ON d.message_id = m.id
        WHERE m.expires_at < now() AND d.state = 'queued'
        LIMIT ${limit}
        FOR UPDATE OF d SKIP LOCKED)
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM expired`);
  return rows[0]?.n ?? 0;
}
