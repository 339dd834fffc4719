// Ack: leased (or still queued, for an ack racing a requeue) → acked, a move
// from deliveries to acked_deliveries in one statement (schema.ts says why).
import { shapedStatement, type Executor } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";
import { jsonText, uuidArray } from "../sql.ts";
import { inLockOrder, leasesHeldBy } from "./lock-order.ts";

export interface Ack {
  memberId: string;
  messageId: string;
}

/**
 * Two WITH items that move the deliveries `d` that `where` names to
 * acked_deliveries: `${name}` is the insert, returning each one's id,
 * message_id and attempt. A reply a waiting sender takes (reply.ts) was never
 * pushed: `taken` counts the take as its delivery and its attempt.
 */
export function movedToAcked(name: string, where: SQL, how: "acked" | "taken" = "acked"): SQL {
  const attempt = how === "taken" ? sql`attempt + 1` : sql`attempt`;
  const deliveredAt = how === "taken" ? sql`coalesce(delivered_at, now())` : sql`delivered_at`;
  return sql`${sql.raw(name)}_rows AS (
      DELETE FROM deliveries d WHERE ${where}
      RETURNING d.id, d.message_id, d.recipient_member_id, d.priority, d.attempt, d.created_at, d.expires_at, d.delivered_at
    ),
    ${sql.raw(name)} AS (
      INSERT INTO acked_deliveries (id, message_id, recipient_member_id, priority, attempt, created_at, expires_at, delivered_at, acked_at)
      SELECT id, message_id, recipient_member_id, priority, ${attempt}, created_at, expires_at, ${deliveredAt}, now()
      FROM ${sql.raw(name)}_rows
      RETURNING id, message_id, attempt
    )`;
}

// Locked in the one order (lock-order.ts), each by an index probe on
// (message_id, recipient_member_id), so an ack cannot deadlock with another
// ack, a requeue or a drop. The rows found are then moved by their ids:
// joined back to the table instead, a plan made while the statistics said it
// was empty read all of it for each ack (pool-plans.test.ts).
const ackStatement = shapedStatement<{ acks: string; count: number }>(
  (slot) => sql`
    WITH ${movedToAcked(
      "acked",
      sql`d.id = ANY (ARRAY(
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
        ) found))`,
    )}
    SELECT id FROM acked`,
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
    WITH ${movedToAcked("acked", leasesHeldBy(uuidArray([holderId])))}
    SELECT id FROM acked`);
  return rows.length;
}
