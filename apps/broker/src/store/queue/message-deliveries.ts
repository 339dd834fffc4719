// A message's deliveries wherever they are: owed or expired in deliveries,
// acknowledged in acked_deliveries (an ack moves them, schema.ts), or in
// deliveries as 'acked' where an instance from before migration 0010 acked
// them in place. Each part is a probe of its table's (message, recipient) key.
import { sql, type SQL } from "drizzle-orm";

/** How many deliveries the message `messageId` (an expression) has, in any state. */
export const deliveryCount = (messageId: SQL): SQL => sql`(
  (SELECT count(*) FROM deliveries d WHERE d.message_id = ${messageId})
  + (SELECT count(*) FROM acked_deliveries a WHERE a.message_id = ${messageId}))::int`;

/** The rows (id, recipient_member_id, state, attempt, delivered_at, acked_at) of every delivery of `messageId`. */
export const deliveriesOfMessage = (messageId: SQL): SQL => sql`(
  SELECT id, recipient_member_id, state, attempt, delivered_at, acked_at
  FROM deliveries WHERE message_id = ${messageId}
  UNION ALL
  SELECT id, recipient_member_id, 'acked', attempt, delivered_at, acked_at
  FROM acked_deliveries WHERE message_id = ${messageId})`;
