// What earlier send statements stored: the sends of a batch whose statement
// failed after its commit (its answer lost), and the messages already stored
// under a retried client id.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { isoTime, jsonParam } from "../sql.ts";
import type { EnqueuedSend, NewMessage } from "./enqueue.ts";
import { deliveriesOfMessage, deliveryCount } from "./message-deliveries.ts";
import { leasedPush } from "./send-parts.ts";

/**
 * The sends of a batch whose statement failed that are stored all the same:
 * a statement can fail after its commit (the connection lost before the
 * answer came). A message's id is made for this one batch, so a row with it
 * was written by that statement. Reported as enqueueSends reports them, with
 * the deliveries it leased to presences of this instance.
 */
export async function storedSends(db: Executor, messages: NewMessage[], instanceId: string): Promise<EnqueuedSend[]> {
  if (messages.length === 0) return [];
  return db.rows<EnqueuedSend>(sql`
    SELECT q.idx, true AS known, true AS "senderLive", true AS inserted, NULL AS "priorId", 0 AS "priorRecipients",
           (SELECT coalesce(json_agg(d.recipient_member_id), '[]') FROM ${deliveriesOfMessage(sql`m.id`)} d)::text AS recipients,
           (SELECT coalesce(json_agg(${leasedPush("d")}), '[]')
            FROM deliveries d JOIN presences p ON p.id = d.lease_presence_id
            WHERE d.message_id = m.id AND d.state = 'leased' AND p.instance_id = ${instanceId}
              -- Leased by that statement (in its transaction: its now()), not by a claim since.
              AND d.attempt = 1 AND d.delivered_at = m.created_at)::text AS leased,
           -- Those leased elsewhere count as queued: a look for them here finds nothing.
           '[]' AS "leasedElsewhere",
           ${isoTime("m.created_at")} AS "createdAt", 0 AS notified
    FROM jsonb_to_recordset(${jsonParam(messages.map((m, idx) => ({ id: m.id, idx })))}) AS q(idx int, id uuid)
    JOIN messages m ON m.id = q.id
    ORDER BY q.idx`);
}

export interface StoredSend {
  senderId: string;
  clientId: string;
  messageId: string;
  recipients: number;
}

/** Messages already stored under these (sender, client id) keys. */
export async function findSendsByClientId(
  db: Executor,
  keys: Array<{ senderId: string; clientId: string }>,
): Promise<StoredSend[]> {
  if (keys.length === 0) return [];
  return db.rows<StoredSend>(sql`
    SELECT m.sender_member_id AS "senderId", m.client_id AS "clientId", m.id AS "messageId",
           ${deliveryCount(sql`m.id`)} AS recipients
    FROM messages m
    JOIN jsonb_to_recordset(${jsonParam(keys)}) AS k("senderId" uuid, "clientId" text)
      ON m.sender_member_id = k."senderId" AND m.client_id = k."clientId"`);
}
