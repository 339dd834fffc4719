// Acknowledged deliveries as tests make and read them by hand: an ack moves
// its delivery from deliveries to acked_deliveries (schema.ts).
import { sql, type SQL } from "drizzle-orm";
import { movedToAcked } from "../../src/store/queue/ack.ts";

/** Moves the deliveries `d` that `where` names to acked_deliveries, as an ack does. */
export const ackByHand = (where: SQL): SQL => sql`WITH ${movedToAcked("acked", where)} SELECT id FROM acked`;

/** Every delivery, owed, expired or acknowledged, as one relation with its state: to read states across both tables. */
export const EVERY_DELIVERY = `(
  SELECT id, message_id, recipient_member_id, state, attempt, delivered_at FROM deliveries
  UNION ALL
  SELECT id, message_id, recipient_member_id, 'acked', attempt, delivered_at FROM acked_deliveries)`;
