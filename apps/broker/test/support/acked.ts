// Acknowledged deliveries as tests make and read them by hand: an ack moves
// its delivery from deliveries to acked_deliveries (schema.ts).
import { sql, type SQL } from "drizzle-orm";

/** Moves the deliveries `d` that `where` names to acked_deliveries, as an ack now would. */
export const ackByHand = (where: SQL): SQL => sql`
  WITH gone AS (
    DELETE FROM deliveries d WHERE ${where}
    RETURNING id, message_id, recipient_member_id, priority, attempt, created_at, expires_at, delivered_at)
  INSERT INTO acked_deliveries (id, message_id, recipient_member_id, priority, attempt, created_at, expires_at, delivered_at, acked_at)
  SELECT id, message_id, recipient_member_id, priority, greatest(attempt, 1), created_at, expires_at, coalesce(delivered_at, now()), now()
  FROM gone`;

/** Every delivery, owed, expired or acknowledged, as one relation with its state: to read states across both tables. */
export const EVERY_DELIVERY = `(
  SELECT id, message_id, recipient_member_id, state, attempt, delivered_at FROM deliveries
  UNION ALL
  SELECT id, message_id, recipient_member_id, 'acked', attempt, delivered_at FROM acked_deliveries)`;
