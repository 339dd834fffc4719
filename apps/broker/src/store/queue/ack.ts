// Ack: leased (or still queued, for an ack racing a requeue) → acked.
import { shapedStatement, type Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { jsonText, uuidArray } from "../sql.ts";
import { inLockOrder, leasesHeldBy } from "./lock-order.ts";

export interface Ack {
  memberId: string;
  messageId: string;
}

// Locked in the one order (lock-order.ts), each by an index probe on
// (message_id, recipient_member_id), so an ack cannot deadlock with another
// ack, a requeue or a drop. The rows found are then updated by their ids:
// joined back to the table instead, a plan made while the statistics said it
// was empty read all of it for each ack (pool-plans.test.ts).
const ackStatement = shapedStatement<{ acks: string; count: number }>(
  (slot) => sql`
    UPDATE deliveries d
    SET state = 'acked', acked_at = now(), lease_presence_id = NULL, lease_expires_at = NULL
    WHERE d.id = ANY (ARRAY(
      SELECT found.id
      FROM (
        SELECT * FROM jsonb_to_recordset(${jsonText(slot("acks"))}) AS a("memberId" uuid, "messageId" uuid)
        LIMIT ${slot("count")}
      ) a
      CROSS JOIN LATERAL (
        SELECT id FROM deliveries
        WHERE message_id = a."messageId" AND recipient_member_id = a."memberId" AND state IN ('queued', 'leased')
        LIMIT 1
        FOR UPDATE
      ) found))
    RETURNING d.id`,
);

/** Returns how many deliveries changed; acks of unknown or already acked deliveries change nothing. */
export async function ackDeliveries(db: Executor, acks: Ack[]): Promise<number> {
  if (acks.length === 0) return 0;
  const ordered = inLockOrder(acks);
  const rows = await db.rows<{ id: string }>(ackStatement({ acks: JSON.stringify(ordered), count: ordered.length }));
  return rows.length;
}

/** Every delivery leased to this holder (a webhook attempt whose request succeeded) → acked; returns how many. */
export async function ackHeldBy(db: Executor, holderId: string): Promise<number> {
  const rows = await db.rows<{ id: string }>(sql`
    UPDATE deliveries d SET state = 'acked', acked_at = now(), lease_presence_id = NULL, lease_expires_at = NULL
    WHERE ${leasesHeldBy(uuidArray([holderId]))}
    RETURNING d.id`);
  return rows.length;
}
