// Whether a message `m` is settled, and may be pruned: no recipient still
// owes an ack for it (no delivery queued or leased), none of its deliveries
// expired less than the settled retention ago (an expired message is kept
// that long after it expired, for GET /v1/messages/:id and a retried send),
// and no request waits for its reply. A delivery past its TTL but not marked
// expired yet is owed still: the expiry sweep counts it as it marks it, so
// none leaves the database uncounted however far the sweep is behind.
import { sql, type SQL } from "drizzle-orm";

// The check is one probe of the message's deliveries per message read
// (OFFSET 0 keeps it so): under a generic plan Postgres would otherwise hash
// every owed delivery of the table, reading all of them, on every tick.
export const settled = (settledSeconds: number): SQL => sql`
  (m.reply_wait_until IS NULL OR m.reply_wait_until < now())
  AND NOT EXISTS (SELECT 1 FROM deliveries d
                  WHERE d.message_id = m.id
                    AND (d.state IN ('queued', 'leased')
                         OR (d.state = 'expired' AND m.expires_at >= now() - make_interval(secs => ${settledSeconds})))
                  OFFSET 0)`;
