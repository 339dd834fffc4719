// Requeue: leased → queued, for every way a lease can end without an ack.
// One UPDATE; only which leases it selects differs.
import type { Executor } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";
import { jsonParam, unique, uuidArray } from "../sql.ts";

export type RequeueScope =
  /** Every lease held by these presences, or by these other holders (a webhook attempt, a waiting request): they ended. */
  | { presences: string[] }
  /** These pushes were never delivered (their socket did not take them, a webhook batch left them out): their claim is undone. */
  | { pushes: Array<{ messageId: string; memberId: string; presenceId: string }> }
  /** Leases that ran out unacknowledged, at most `limit` of them, skipping rows others hold. */
  | { expiredLeases: { limit: number } };

function leasesIn(scope: RequeueScope): SQL | null {
  if ("presences" in scope) {
    if (scope.presences.length === 0) return null;
    return sql`
      SELECT id, lease_presence_id FROM deliveries
      WHERE state = 'leased' AND lease_presence_id = ANY (${uuidArray(scope.presences)})`;
  }
  if ("pushes" in scope) {
    if (scope.pushes.length === 0) return null;
    return sql`
      SELECT d.id, d.lease_presence_id
      FROM jsonb_to_recordset(${jsonParam(scope.pushes)}) AS l("messageId" uuid, "memberId" uuid, "presenceId" uuid)
      JOIN deliveries d ON d.message_id = l."messageId" AND d.recipient_member_id = l."memberId"
      WHERE d.state = 'leased' AND d.lease_presence_id = l."presenceId"`;
  }
  return sql`
    SELECT id, lease_presence_id FROM deliveries
    WHERE state = 'leased' AND lease_expires_at < now()
    ORDER BY id LIMIT ${scope.expiredLeases.limit}
    FOR UPDATE SKIP LOCKED`;
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
      ? sql`, attempt = greatest(attempt - 1, 0), delivered_at = CASE WHEN attempt <= 1 THEN NULL ELSE delivered_at END`
      : sql``;
  // The holder is matched again on the row as it is when updated: a lease
  // that ended and went to another holder while this statement waited for
  // its row is that holder's now, not this scope's.
  const rows = await db.rows<{ memberId: string }>(sql`
    UPDATE deliveries SET state = 'queued', lease_presence_id = NULL, lease_expires_at = NULL${undoClaim}
    WHERE state = 'leased' AND (id, lease_presence_id) IN (${which})
    RETURNING recipient_member_id AS "memberId"`);
  return unique(rows.map((r) => r.memberId));
}
