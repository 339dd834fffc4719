// Writing sends: recipients, messages and deliveries, each one statement for
// a whole batch of sends.
import type { Executor } from "@switchboard/db";
import type { Priority } from "@switchboard/protocol";
import { sql } from "drizzle-orm";
import { jsonParam } from "./sql-util.ts";

export interface RecipientQuery {
  idx: number;
  meshId: string;
  senderId: string;
  targetSpec: string;
}

// pubkey → that member (the sender too, if it names itself); * → every other
// member; #channel → the other members that joined it; tag:x → the other
// members carrying x. Revoked members receive nothing.
export async function resolveRecipients(tx: Executor, queries: RecipientQuery[]): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>(queries.map((q) => [q.idx, []]));
  if (queries.length === 0) return out;
  const rows = await tx.rows<{ idx: number; memberId: string }>(sql`
    SELECT q.idx, mb.id AS "memberId"
    FROM jsonb_to_recordset(${jsonParam(queries)}) AS q(idx int, "meshId" uuid, "senderId" uuid, "targetSpec" text)
    JOIN members mb ON mb.mesh_id = q."meshId" AND mb.revoked_at IS NULL
    WHERE CASE
      WHEN q."targetSpec" = '*' THEN mb.id <> q."senderId"
      WHEN q."targetSpec" LIKE 'tag:%' THEN mb.id <> q."senderId" AND substr(q."targetSpec", 5) = ANY (mb.tags)
      WHEN q."targetSpec" LIKE '#%' THEN mb.id <> q."senderId" AND EXISTS (
        SELECT 1 FROM channel_members c
        WHERE c.mesh_id = q."meshId" AND c.channel = q."targetSpec" AND c.member_id = mb.id)
      ELSE mb.pubkey = q."targetSpec"
    END
    ORDER BY q.idx, mb.id`);
  for (const row of rows) out.get(row.idx)?.push(row.memberId);
  return out;
}

/** Which of these (mesh, #channel) pairs have at least one member. */
export async function existingChannels(tx: Executor, pairs: Array<{ meshId: string; channel: string }>): Promise<Set<string>> {
  if (pairs.length === 0) return new Set();
  const rows = await tx.rows<{ meshId: string; channel: string }>(sql`
    SELECT DISTINCT c.mesh_id AS "meshId", c.channel
    FROM channel_members c
    JOIN jsonb_to_recordset(${jsonParam(pairs)}) AS q("meshId" uuid, channel text)
      ON c.mesh_id = q."meshId" AND c.channel = q.channel`);
  return new Set(rows.map((r) => `${r.meshId} ${r.channel}`));
}

export interface NewMessage {
  id: string;
  meshId: string;
  senderId: string;
  clientId: string | null;
  targetSpec: string;
  priority: Priority;
  nonce: string;
  ciphertext: string;
  replyTo: string | null;
  ttlSeconds: number;
}

/** Inserts in order; returns the ids actually inserted (a retried client id inserts nothing). */
export async function insertMessages(tx: Executor, messages: NewMessage[]): Promise<Set<string>> {
  if (messages.length === 0) return new Set();
  const rows = await tx.rows<{ id: string }>(sql`
    INSERT INTO messages (id, mesh_id, sender_member_id, client_id, target_spec, priority, nonce, ciphertext,
                          reply_to, expires_at)
    SELECT m.id, m."meshId", m."senderId", m."clientId", m."targetSpec", m.priority, m.nonce, m.ciphertext,
           m."replyTo", now() + make_interval(secs => m."ttlSeconds")
    FROM jsonb_to_recordset(${jsonParam(messages.map((m, ord) => ({ ...m, ord })))})
      AS m(id uuid, "meshId" uuid, "senderId" uuid, "clientId" text, "targetSpec" text, priority text,
           nonce text, ciphertext text, "replyTo" uuid, "ttlSeconds" int, ord int)
    ORDER BY m.ord
    ON CONFLICT (sender_member_id, client_id) DO NOTHING
    RETURNING id`);
  return new Set(rows.map((r) => r.id));
}

export interface ExistingMessage {
  senderId: string;
  clientId: string;
  messageId: string;
  recipients: number;
}

export async function findMessagesByClientId(
  tx: Executor,
  keys: Array<{ senderId: string; clientId: string }>,
): Promise<ExistingMessage[]> {
  if (keys.length === 0) return [];
  return tx.rows<ExistingMessage>(sql`
    SELECT m.sender_member_id AS "senderId", m.client_id AS "clientId", m.id AS "messageId",
           (SELECT count(*) FROM deliveries d WHERE d.message_id = m.id)::int AS recipients
    FROM messages m
    JOIN jsonb_to_recordset(${jsonParam(keys)}) AS k("senderId" uuid, "clientId" text)
      ON m.sender_member_id = k."senderId" AND m.client_id = k."clientId"`);
}

export interface NewDelivery {
  messageId: string;
  memberId: string;
  priority: Priority;
  ttlSeconds: number;
}

/** Rows are numbered in the given order: that order is the recipients' FIFO. */
export async function insertDeliveries(tx: Executor, deliveries: NewDelivery[]): Promise<void> {
  if (deliveries.length === 0) return;
  await tx.rows(sql`
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
    SELECT d."messageId", d."memberId", d.priority, now() + make_interval(secs => d."ttlSeconds")
    FROM jsonb_to_recordset(${jsonParam(deliveries.map((d, ord) => ({ ...d, ord })))})
      AS d("messageId" uuid, "memberId" uuid, priority text, "ttlSeconds" int, ord int)
    ORDER BY d.ord`);
}

export interface LivePresenceRow {
  presenceId: string;
  memberId: string;
  status: "idle" | "working" | "dnd";
}

export async function livePresencesOfMembers(db: Executor, memberIds: string[]): Promise<LivePresenceRow[]> {
  if (memberIds.length === 0) return [];
  return db.rows<LivePresenceRow>(sql`
    SELECT id AS "presenceId", member_id AS "memberId", status FROM presences
    WHERE disconnected_at IS NULL
      AND member_id IN (SELECT jsonb_array_elements_text(${jsonParam(memberIds)})::uuid)`);
}
