import { sql } from "drizzle-orm";
import type { Database } from "@switchboard/db";

export async function pingDatabase(db: Database): Promise<void> {
  await db.rows(sql`SELECT 1`);
}
