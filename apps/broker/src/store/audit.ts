// The audit log: who did what, when. Metadata only, never a nonce or ciphertext.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { jsonParam } from "./sql.ts";

export type AuditEvent = "connect" | "disconnect" | "send" | "revoke";

export interface AuditEntry {
  event: AuditEvent;
  meshId: string | null;
  memberId: string | null;
  meta: Record<string, string | number | boolean | null>;
}

export async function writeAudit(db: Executor, entries: AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await db.rows(sql`
    INSERT INTO audit_log (event, mesh_id, member_id, meta)
    SELECT e.event, e."meshId", e."memberId", e.meta
    FROM jsonb_to_recordset(${jsonParam(entries)}) AS e(event text, "meshId" uuid, "memberId" uuid, meta jsonb)`);
}
