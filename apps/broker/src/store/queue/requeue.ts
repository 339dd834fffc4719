// Requeue: leased → queued, for every way a lease can end without an ack.
// One UPDATE; only which leases it selects differs.
import type { Executor } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";
import { batchLimit, jsonParam, unique, uuidArray, uuidRows } from "../sql.ts";
import { heldLeases, leasesHeldBy } from "./lock-order.ts";

export type RequeueScope =
  /** Every lease held by these presences, or by these other holders (a webhook attempt, a waiting request): they ended. */
  | { presences: string[] }
  /** These pushes were never delivered (their socket did not take them, a webhook batch left them out): their claim is undone. */
  | { pushes: Array<{ messageId: string; memberId: string; presenceId: string }> }
  /** Replies held for these requests, whose holds were released: those no wait holds again since (a retry with the key may hold anew). */
  | { releasedHolds: string[] }
  /** Leases that ran out unacknowledged, at most `limit` of them, skipping rows others hold. */
  | { expiredLeases: { limit: number } }
  /** Leases of these presences that ran out: taken back by their own instance before it leases them anything newer. */
  | { expiredOf: string[] };

// Each scope names its rows so that the update reaches every one by an index
// probe of its own: a join of the scope's leases back to the table by
// (id, holder) was planned on the holder's index, and read all of a holder's
// leases again for each of them (a presence with a full window of 512: 130,000 rows).
// The holder is matched on the row as it is when updated (Postgres checks the
// condition again on a row another statement changed meanwhile): a lease that
// ended and went to another holder while this statement waited for its row is
// that holder's now, not this scope's. A scope that may wait for rows locks
// them first, in the one order (lock-order.ts); the lapsed leases of every
// holder are taken skipping the rows others hold, and never wait.
function leasesIn(scope: RequeueScope): { with: SQL; where: SQL } | null {
  if ("presences" in scope) {
    if (scope.presences.length === 0) return null;
    return { with: sql``, where: leasesHeldBy(uuidArray(scope.presences)) };
  }
  if ("releasedHolds" in scope) {
    if (scope.releasedHolds.length === 0) return null;
    const unheld = sql`ARRAY(SELECT id FROM messages WHERE id = ANY (${uuidArray(scope.releasedHolds)}) AND (reply_wait_until IS NULL OR reply_wait_until <= now()))`;
    return { with: sql``, where: leasesHeldBy(unheld) };
  }
  if ("expiredOf" in scope) {
    if (scope.expiredOf.length === 0) return null;
    // Each presence's leases by their holder's index, the expiry tested on
    // each row read: a plan free to test it through the index of expiries
    // would, with a backlog of expired leases the statistics do not know of
    // (after an outage), read all of them to find a presence's few. OFFSET 0
    // keeps the test out of the subquery's scan. The UPDATE tests the expiry
    // again on the row as it is then, in a form no index serves.
    return heldLeases(
      sql`
        SELECT x.id, p.id AS presence_id
        FROM ${uuidRows(scope.expiredOf)} p
        CROSS JOIN LATERAL (
          SELECT id, lease_expires_at FROM deliveries WHERE lease_presence_id = p.id AND state = 'leased' OFFSET 0) x
        WHERE x.lease_expires_at < now()`,
      sql` AND (d.lease_expires_at < now()) IS TRUE`,
    );
  }
  if ("pushes" in scope) {
    if (scope.pushes.length === 0) return null;
    return heldLeases(sql`
      SELECT x.id, l."presenceId" AS presence_id
      FROM (SELECT * FROM jsonb_to_recordset(${jsonParam(scope.pushes)}) AS l("messageId" uuid, "memberId" uuid, "presenceId" uuid)
            LIMIT ${batchLimit(scope.pushes.length)}) l
      CROSS JOIN LATERAL (
        SELECT id FROM deliveries WHERE message_id = l."messageId" AND recipient_member_id = l."memberId" LIMIT 1) x`);
  }
  // The longest lapsed first, in the order of the index of expiries: in the
  // order of their ids, a plan made while the statistics said the table was
  // empty walked the primary key, every delivery, to find them. The update
  // tests the lapse again as one expression, so no index of leases serves
  // that test: with it, such a plan intersected the ids with every lease.
  return {
    with: sql``,
    where: sql`(CASE WHEN d.state = 'leased' THEN d.lease_expires_at < now() END) IS TRUE AND d.id = ANY (ARRAY(
      SELECT id FROM deliveries
      WHERE state = 'leased' AND lease_expires_at < now()
      ORDER BY lease_expires_at LIMIT ${scope.expiredLeases.limit}
      FOR UPDATE SKIP LOCKED))`,
  };
}

/** Returns the recipients whose queues got work back. */
export async function requeue(db: Executor, scope: RequeueScope): Promise<string[]> {
  const which = leasesIn(scope);
  if (which === null) return [];
  // A push never written was never delivered: its claim is undone, so its
  // first real push is attempt 1 again (not counted as a redelivery) and
  // deliveredAt stays unset until then.
  const undoClaim =
    "pushes" in scope
      ? sql`, attempt = greatest(d.attempt - 1, 0), delivered_at = CASE WHEN d.attempt <= 1 THEN NULL ELSE d.delivered_at END`
      : sql``;
  const rows = await db.rows<{ memberId: string }>(sql`
    ${which.with}
    UPDATE deliveries d SET state = 'queued', lease_presence_id = NULL, lease_expires_at = NULL${undoClaim}
    WHERE ${which.where}
    RETURNING d.recipient_member_id AS "memberId"`);
  return unique(rows.map((r) => r.memberId));
}
