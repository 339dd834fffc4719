// Whether a message `m` is settled: no recipient still owes an ack for it
// (no delivery queued or leased), or it expired longer than the settled
// retention ago (its deliveries are past their TTL, whether or not the
// expiry sweep has marked them yet). Only a settled message may be pruned:
// nothing acked to a sender leaves a recipient's queue before its TTL.
import { sql, type SQL } from "drizzle-orm";

// The owed check is one probe of the message's deliveries per message read
// (OFFSET 0 keeps it so): under a generic plan Postgres would otherwise hash
// every owed delivery of the table, reading all of them, on every tick.
export const settled = (settledSeconds: number): SQL => sql`
  (m.expires_at < now() - make_interval(secs => ${settledSeconds})
   OR NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.state IN ('queued', 'leased') OFFSET 0))`;
