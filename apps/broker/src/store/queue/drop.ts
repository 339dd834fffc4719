// Drop: a revoked recipient's undelivered deliveries are deleted; it will
// never be able to receive them.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

/** Returns how many deliveries were dropped. */
export async function dropUndelivered(tx: Executor, memberId: string): Promise<number> {
  const rows = await tx.rows<{ n: number }>(sql`
    WITH dropped AS (
      DELETE FROM deliveries
      WHERE recipient_member_id = ${memberId}::uuid AND state IN ('queued', 'leased')
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM dropped`);
  return rows[0]?.n ?? 0;
}
