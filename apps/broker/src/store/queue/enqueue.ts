// Enqueue: a batch of sends becomes messages and their deliveries (state
// `queued`), in one statement, so one commit (and one round trip) makes every
// message, delivery and audit row of the batch durable together.
import type { Executor } from "@switchboard/db";
import type { Priority } from "@switchboard/protocol";
import { sql } from "drizzle-orm";
import { ROUTE_CTES } from "../routing.ts";
import { jsonParam } from "../sql.ts";

export interface NewMessage {
  id: string;
  meshId: string;
  senderId: string;
  /** The sender's idempotency key (a send's `id`), or null. */
  clientId: string | null;
  targetSpec: string;
  priority: Priority;
  nonce: string;
  ciphertext: string;
  replyTo: string | null;
  ttlSeconds: number;
}

export interface EnqueuedSend {
  idx: number;
  /** False for a direct pubkey outside the mesh or a channel nobody joined: nothing was written. */
  known: boolean;
  /** False when the sender was revoked before this statement: nothing was written. */
  senderLive: boolean;
  inserted: boolean;
  /** For a retried client id: the message stored by an earlier statement. */
  priorId: string | null;
  priorRecipients: number;
  /** JSON array of the recipients' member ids. */
  recipients: string;
}

// Data-modifying CTEs run to completion whether or not the final SELECT reads
// them. A retried client id inserts nothing (ON CONFLICT) and reports the
// message an earlier statement stored; a repeat within this very batch sees
// no prior row (one snapshot) and is matched to its sibling by the caller.
// The JSON input is capped with LIMIT n so the planner knows how few rows it
// holds and probes indexes instead of hashing whole tables.
export async function enqueueSends(db: Executor, messages: NewMessage[]): Promise<EnqueuedSend[]> {
  if (messages.length === 0) return [];
  return db.rows<EnqueuedSend>(sql`
    WITH q AS (
      SELECT * FROM jsonb_to_recordset(${jsonParam(messages.map((m, idx) => ({ ...m, idx })))})
        AS q(idx int, id uuid, "meshId" uuid, "senderId" uuid, "clientId" text, "targetSpec" text,
             priority text, nonce text, ciphertext text, "replyTo" uuid, "ttlSeconds" int)
      LIMIT ${messages.length}
    ),
    ${ROUTE_CTES},
    writable AS (
      SELECT r.* FROM routed r
      WHERE r.known AND EXISTS (SELECT 1 FROM members s WHERE s.id = r."senderId" AND s.revoked_at IS NULL)
    ),
    inserted AS (
      INSERT INTO messages (id, mesh_id, sender_member_id, client_id, target_spec, priority, nonce, ciphertext,
                            reply_to, expires_at)
      SELECT id, "meshId", "senderId", "clientId", "targetSpec", priority, nonce, ciphertext, "replyTo",
             now() + make_interval(secs => "ttlSeconds")
      FROM writable
      ORDER BY idx
      ON CONFLICT (sender_member_id, client_id) DO NOTHING
      RETURNING id
    ),
    enqueued AS (
      INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
      SELECT w.id, r.member_id, w.priority, now() + make_interval(secs => w."ttlSeconds")
      FROM writable w JOIN inserted i ON i.id = w.id JOIN recipients r ON r.idx = w.idx
      ORDER BY w.idx, r.member_id
    ),
    audited AS (
      INSERT INTO audit_log (event, mesh_id, member_id, meta)
      SELECT 'send', w."meshId", w."senderId",
             jsonb_build_object('messageId', w.id, 'targetSpec', w."targetSpec", 'priority', w.priority,
                                'recipients', (SELECT count(*) FROM recipients r WHERE r.idx = w.idx))
      FROM writable w JOIN inserted i ON i.id = w.id
    )
    SELECT r.idx, r.known, w.id IS NOT NULL AS "senderLive", i.id IS NOT NULL AS inserted, prior.id AS "priorId",
           coalesce((SELECT count(*) FROM deliveries d WHERE d.message_id = prior.id), 0)::int AS "priorRecipients",
           coalesce((SELECT json_agg(x.member_id) FROM recipients x WHERE x.idx = r.idx), '[]')::text AS recipients
    FROM routed r
    LEFT JOIN writable w ON w.idx = r.idx
    LEFT JOIN inserted i ON i.id = r.id
    -- A lateral probe of the (sender, client id) index: a plain join could
    -- hash the whole messages table under a generic plan.
    LEFT JOIN LATERAL (
      SELECT m.id FROM messages m
      WHERE i.id IS NULL AND w.id IS NOT NULL AND m.sender_member_id = r."senderId" AND m.client_id = r."clientId"
      LIMIT 1
    ) prior ON true
    ORDER BY r.idx`);
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
           (SELECT count(*) FROM deliveries d WHERE d.message_id = m.id)::int AS recipients
    FROM messages m
    JOIN jsonb_to_recordset(${jsonParam(keys)}) AS k("senderId" uuid, "clientId" text)
      ON m.sender_member_id = k."senderId" AND m.client_id = k."clientId"`);
}
