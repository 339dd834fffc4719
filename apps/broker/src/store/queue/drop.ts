// Drop: a revoked recipient's undelivered deliveries are deleted; it will
// never be able to receive them.
import type { Executor } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";
import { lockedInOrder } from "./lock-order.ts";

/**
 * Deletes the queued and leased deliveries of the recipients `recipient` (a
 * condition on `d.recipient_member_id`) names; returns how many. Each state
 * is found through its own partial index: one predicate for both reads every
 * delivery, the acknowledged ones kept for the retention included.
 */
async function dropOwedTo(db: Executor, recipient: SQL): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    WITH owed AS (
      SELECT d.id FROM deliveries d WHERE ${recipient} AND d.state = 'queued'
      UNION ALL
      SELECT d.id FROM deliveries d WHERE ${recipient} AND d.state = 'leased'
    ),
    -- Locked in the one order (lock-order.ts), then the state again: a row
    -- acknowledged meanwhile is read anew here, and stays.
    dropped AS (
      DELETE FROM deliveries d
      WHERE d.id = ANY (${lockedInOrder(sql`ARRAY(SELECT id FROM owed)`)}) AND d.state IN ('queued', 'leased')
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM dropped`);
  return rows[0]?.n ?? 0;
}

/** Returns how many deliveries were dropped. */
export function dropUndelivered(tx: Executor, memberId: string): Promise<number> {
  return dropOwedTo(tx, sql`d.recipient_member_id = ${memberId}::uuid`);
}

/**
 * The same for members revoked in the last `withinSeconds`: a send whose
 * statement had routed to the member before its revocation committed writes
 * its deliveries after the revocation dropped the others. Returns how many.
 */
export function dropUndeliveredOfRevoked(db: Executor, withinSeconds: number): Promise<number> {
  return dropOwedTo(
    db,
    sql`d.recipient_member_id IN (SELECT id FROM members WHERE revoked_at > now() - make_interval(secs => ${withinSeconds}))`,
  );
}
