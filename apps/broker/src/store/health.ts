import { sql } from "drizzle-orm";
import type { Database } from "@switchboard/db";

/**
 * One round trip that also says whether the server would refuse writes:
 * `transaction_read_only` is on in a hot standby and under
 * `default_transaction_read_only`.
 */
export async function pingDatabase(db: Database): Promise<{ readOnly: boolean }> {
  const [row] = await db.rows<{ readOnly: boolean }>(sql`SELECT current_setting('transaction_read_only') = 'on' AS "readOnly"`);
  return { readOnly: row?.readOnly === true };
}
