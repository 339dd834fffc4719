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
// members carrying x. Revoked members receive nothing. `q` is the send, `mb` a
// member of its mesh.
const IS_RECIPIENT = sql.raw(`CASE
      WHEN q."targetSpec" = '*' THEN mb.id <> q."senderId"
      WHEN q."targetSpec" LIKE 'tag:%' THEN mb.id <> q."senderId" AND substr(q."targetSpec", 5) = ANY (mb.tags)
      WHEN q."targetSpec" LIKE '#%' THEN mb.id <> q."senderId" AND EXISTS (
        SELECT 1 FROM channel_members c
        WHERE c.mesh_id = q."meshId" AND c.channel = q."targetSpec" AND c.member_id = mb.id)
      ELSE mb.pubkey = q."targetSpec"
    END`);

export async function resolveRecipients(tx: Executor, queries: RecipientQuery[]): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>(queries.map((q) => [q.idx, []]));
  if (queries.length === 0) return out;
  const rows = await tx.rows<{ idx: number; memberId: string }>(sql`
    SELECT q.idx, mb.id AS "memberId"
    FROM jsonb_to_recordset(${jsonParam(queries)}) AS q(idx int, "meshId" uuid, "senderId" uuid, "targetSpec" text)
    JOIN members mb ON mb.mesh_id = q."meshId" AND mb.revoked_at IS NULL
    WHERE ${IS_RECIPIENT}
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

export interface WrittenSend {
  idx: number;
  /** False for a direct pubkey outside the mesh or a channel nobody joined: nothing was written. */
  known: boolean;
  inserted: boolean;
  /** For a retried client id: the message stored by an earlier statement. */
  priorId: string | null;
  priorRecipients: number;
  /** JSON array of the recipients' member ids. */
  recipients: string;
}

// The whole of a batch of sends in one statement, so one commit (and one
// round trip) makes every message, delivery and audit row durable together.
// Data-modifying CTEs run to completion whether or not the final SELECT reads
// them. A retried client id inserts nothing (ON CONFLICT) and reports the
// message an earlier statement stored; a repeat within this very batch sees
// no prior row (one snapshot) and is matched to its sibling by the caller.
export async function writeSends(db: Executor, messages: NewMessage[]): Promise<WrittenSend[]> {
  if (messages.length === 0) return [];
  return db.rows<WrittenSend>(sql`
    WITH q AS (
      SELECT * FROM jsonb_to_recordset(${jsonParam(messages.map((m, idx) => ({ ...m, idx })))})
        AS q(idx int, id uuid, "meshId" uuid, "senderId" uuid, "clientId" text, "targetSpec" text,
             priority text, nonce text, ciphertext text, "replyTo" uuid, "ttlSeconds" int)
      LIMIT ${messages.length}
    ),
    recipients AS (
      SELECT q.idx, mb.id AS member_id
      FROM q JOIN members mb ON mb.mesh_id = q."meshId" AND mb.revoked_at IS NULL
      WHERE ${IS_RECIPIENT}
    ),
    checked AS (
      SELECT q.*, CASE
        WHEN q."targetSpec" ~ '^[0-9a-f]{64}$' THEN EXISTS (SELECT 1 FROM recipients r WHERE r.idx = q.idx)
        WHEN q."targetSpec" LIKE '#%' THEN EXISTS (
          SELECT 1 FROM channel_members c WHERE c.mesh_id = q."meshId" AND c.channel = q."targetSpec")
        ELSE true
      END AS known
      FROM q
    ),
    inserted AS (
      INSERT INTO messages (id, mesh_id, sender_member_id, client_id, target_spec, priority, nonce, ciphertext,
                            reply_to, expires_at)
      SELECT id, "meshId", "senderId", "clientId", "targetSpec", priority, nonce, ciphertext, "replyTo",
             now() + make_interval(secs => "ttlSeconds")
      FROM checked WHERE known
      ORDER BY idx
      ON CONFLICT (sender_member_id, client_id) DO NOTHING
      RETURNING id
    ),
    delivered AS (
      INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
      SELECT c.id, r.member_id, c.priority, now() + make_interval(secs => c."ttlSeconds")
      FROM checked c JOIN inserted i ON i.id = c.id JOIN recipients r ON r.idx = c.idx
      ORDER BY c.idx, r.member_id
    ),
    audited AS (
      INSERT INTO audit_log (event, mesh_id, member_id, meta)
      SELECT 'send', c."meshId", c."senderId",
             jsonb_build_object('messageId', c.id, 'targetSpec', c."targetSpec", 'priority', c.priority,
                                'recipients', (SELECT count(*) FROM recipients r WHERE r.idx = c.idx))
      FROM checked c JOIN inserted i ON i.id = c.id
    )
    SELECT c.idx, c.known, i.id IS NOT NULL AS inserted, prior.id AS "priorId",
           coalesce((SELECT count(*) FROM deliveries d WHERE d.message_id = prior.id), 0)::int AS "priorRecipients",
           coalesce((SELECT json_agg(r.member_id) FROM recipients r WHERE r.idx = c.idx), '[]')::text AS recipients
    FROM checked c
    LEFT JOIN inserted i ON i.id = c.id
    -- A lateral probe of the (sender, client id) index: a plain join could
    -- hash the whole messages table under a generic plan.
    LEFT JOIN LATERAL (
      SELECT m.id FROM messages m
      WHERE i.id IS NULL AND c.known AND m.sender_member_id = c."senderId" AND m.client_id = c."clientId"
      LIMIT 1
    ) prior ON true
    ORDER BY c.idx`);
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
