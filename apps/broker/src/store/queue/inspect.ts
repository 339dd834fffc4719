// What became of a message: its deliveries' states, for its sender
// (GET /v1/messages/:id). A queued delivery whose message outlived its TTL
// reads as expired even before the sweep marks it.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { isoTime } from "../sql.ts";
import { deliveriesOfMessage } from "./message-deliveries.ts";
import type { DeliveryState } from "./types.ts";

export interface RecipientState {
  pubkey: string;
  state: DeliveryState;
  attempt: number;
  deliveredAt: string | null;
  ackedAt: string | null;
}

export interface MessageState {
  messageId: string;
  senderId: string;
  createdAt: string;
  expiresAt: string;
  recipients: RecipientState[];
}

export async function messageState(db: Executor, messageId: string): Promise<MessageState | null> {
  const rows = await db.rows<Omit<MessageState, "recipients"> & { recipients: string }>(sql`
    SELECT m.id AS "messageId", m.sender_member_id AS "senderId",
           ${isoTime("m.created_at")} AS "createdAt", ${isoTime("m.expires_at")} AS "expiresAt",
           coalesce((
             SELECT json_agg(json_build_object(
               'pubkey', r.pubkey,
               'state', CASE WHEN d.state = 'queued' AND m.expires_at <= now() THEN 'expired' ELSE d.state END,
               'attempt', d.attempt,
               'deliveredAt', ${isoTime("d.delivered_at")},
               'ackedAt', ${isoTime("d.acked_at")}) ORDER BY d.id)
             FROM ${deliveriesOfMessage(sql`m.id`)} d JOIN members r ON r.id = d.recipient_member_id), '[]')::text AS recipients
    FROM messages m WHERE m.id = ${messageId}::uuid`);
  const row = rows[0];
  if (!row) return null;
  return { ...row, recipients: JSON.parse(row.recipients) as RecipientState[] };
}
