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

/**
 * The same for members revoked in the last `withinSeconds`: a send whose
 * statement had routed to the member before its revocation committed writes
 * its deliveries after the revocation dropped the others. Returns how many.
 */
export async function dropUndeliveredOfRevoked(db: Executor, withinSeconds: number): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    WITH dropped AS (
      DELETE FROM deliveries d
      USING members m
      WHERE m.revoked_at > now() - make_interval(secs => ${withinSeconds})
        AND d.recipient_member_id = m.id AND d.state IN ('queued', 'leased')
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM dropped`);
  return rows[0]?.n ?? 0;
}
