// One order in which every statement that waits for deliveries' row locks
// takes them: (message id, recipient), the key an ack finds its rows by. Two
// statements that lock the same rows in different orders can each hold a row
// the other waits for, and Postgres then aborts one of them a second later
// (deadlock_timeout): an ack against a requeue of the same leases, or against
// a revocation's drop. Statements that skip locked rows (claims, sweeps,
// prunes) never wait, and may take them in any order.
import { sql, type SQL } from "drizzle-orm";
import { uuidById } from "../sql.ts";

/**
 * The deliveries whose ids the array `ids` holds, locked in the one order, as
 * an array of their ids: for `WHERE d.id = ANY (…)` of the statement that
 * changes them, which then tests on each locked row whether it is still one
 * to change. The sort is made before the locks (Postgres locks a SELECT's
 * rows after its ORDER BY).
 */
export function lockedInOrder(ids: SQL): SQL {
  return sql`ARRAY(
    SELECT l.id FROM deliveries l WHERE l.id = ANY (${ids})
    ORDER BY l.message_id, l.recipient_member_id
    FOR UPDATE)`;
}

/**
 * For the WHERE of a statement that changes the deliveries `d` leased to any
 * of `holders` (a uuid[] expression): they are locked in the one order,
 * then the holder is tested again on each locked row, as one expression no
 * index serves (a lease may have ended or moved while the statement waited).
 */
export function leasesHeldBy(holders: SQL): SQL {
  return sql`d.id = ANY (${lockedInOrder(sql`ARRAY(SELECT id FROM deliveries WHERE state = 'leased' AND lease_presence_id = ANY (${holders}))`)})
    AND CASE WHEN d.state = 'leased' THEN d.lease_presence_id END = ANY (${holders})`;
}

/**
 * Leases named by `named` (id, presence_id): each reached by its id in a list,
 * locked, and kept if that presence holds it still (uuidById). The holder it has now
 * is compared as one expression (none unless leased), so no index on leases
 * serves the test: a plan free to use one intersected the list with every
 * lease.
 */
export function heldLeases(named: SQL, andAlso: SQL = sql``): { with: SQL; where: SQL } {
  return {
    with: sql`WITH named AS (${named})`,
    where: sql`d.id = ANY (${lockedInOrder(sql`ARRAY(SELECT id FROM named)`)})
      AND CASE WHEN d.state = 'leased' THEN d.lease_presence_id END
          IS NOT DISTINCT FROM ${uuidById("named", "presence_id", "d.id")}${andAlso}`,
  };
}

/**
 * The same order for deliveries named by (message id, member id) in the
 * broker, as Postgres orders uuids (their bytes; a uuid's text, lowercased,
 * compares alike).
 */
export function inLockOrder<T extends { messageId: string; memberId: string }>(named: readonly T[]): T[] {
  const key = (d: T) => `${d.messageId.toLowerCase()} ${d.memberId.toLowerCase()}`;
  return named
    .map((d) => ({ d, k: key(d) }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .map(({ d }) => d);
}
