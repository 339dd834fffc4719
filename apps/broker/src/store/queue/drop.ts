// Drop: a revoked recipient's undelivered deliveries are deleted; it will
// never be able to receive them.
import type { Executor } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";
import { lockedInOrder } from "./lock-order.ts";

/** The states a drop deletes: what is still owed, or of that only the queue. */
type Owed = "queued" | "queued or leased";

/**
 * Deletes the deliveries in state `owed` of the recipients `recipient` (a
 * condition on `d.recipient_member_id`) names; returns how many. Each state
 * is found through its own partial index: one predicate for both reads every
 * delivery, the acknowledged ones kept for the retention included. No index
 * of leases leads with the recipient: the leased ones are found by walking
 * every lease.
 */
async function dropOwedTo(db: Executor, recipient: SQL, owed: Owed): Promise<number> {
  const leasedToo = owed === "queued or leased";
  const rows = await db.rows<{ n: number }>(sql`
    WITH owed AS (
      SELECT d.id FROM deliveries d WHERE ${recipient} AND d.state = 'queued'
      ${leasedToo ? sql`UNION ALL SELECT d.id FROM deliveries d WHERE ${recipient} AND d.state = 'leased'` : sql``}
    ),
    -- Locked in the one order (lock-order.ts), then the state again: a row
    -- acknowledged meanwhile is read anew here, and stays.
    dropped AS (
      DELETE FROM deliveries d
      WHERE d.id = ANY (${lockedInOrder(sql`ARRAY(SELECT id FROM owed)`)})
        AND d.state ${leasedToo ? sql`IN ('queued', 'leased')` : sql`= 'queued'`}
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM dropped`);
  return rows[0]?.n ?? 0;
}

/** Returns how many deliveries were dropped: every one the member is still owed. */
export function dropUndelivered(tx: Executor, memberId: string): Promise<number> {
  return dropOwedTo(tx, sql`d.recipient_member_id = ${memberId}::uuid`, "queued or leased");
}

/**
 * The queued deliveries of members revoked in the last `withinSeconds`: a
 * send whose statement had routed to the member before its revocation
 * committed writes its deliveries after the revocation dropped the others.
 * Those it wrote leased go back to the queue when their lease ends (as the
 * socket the revocation closed goes, or at the lease's expiry), and a later
 * call drops them there: so each of the calls that cover the window reads
 * the queue's index alone, not every lease. `withinSeconds` must exceed the
 * longest lease. Returns how many.
 */
export function dropUndeliveredOfRevoked(db: Executor, withinSeconds: number): Promise<number> {
  return dropOwedTo(
    db,
    sql`d.recipient_member_id IN (SELECT id FROM members WHERE revoked_at > now() - make_interval(secs => ${withinSeconds}))`,
    "queued",
  );
}
