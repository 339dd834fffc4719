// The delivery queue: claims with a lease, acknowledgements, lease expiry.
import type { Executor } from "@switchboard/db";
import type { PushFrame } from "@switchboard/protocol";
import { sql } from "drizzle-orm";
import { isoTime, jsonParam } from "./sql-util.ts";

export interface ClaimRequest {
  memberId: string;
  /** This instance's live presences of the member; the best placed one gets the batch. */
  presenceIds: string[];
  limit: number;
}

/** A push to write, with the presence it was leased to. */
export interface ClaimedDelivery extends Omit<PushFrame, "type"> {
  presenceId: string;
  memberId: string;
  /** Queue position: RETURNING has no order, so pushes are sorted by it. */
  seq: number;
}

// The JSON inputs are capped with LIMIT n so the planner knows how few rows
// they hold (it assumes 100 for a set-returning function) and probes indexes
// instead of scanning whole tables to hash them.
//
// One statement for many recipients. Per member it picks one of the given
// presences (an idle one first, as it may take every priority), takes the
// oldest queued deliveries that presence's status lets through, skipping rows
// another claimer holds, and leases them to it.
export async function claimDeliveries(
  db: Executor,
  requests: ClaimRequest[],
  leaseSeconds: number,
): Promise<ClaimedDelivery[]> {
  if (requests.length === 0) return [];
  return db.rows<ClaimedDelivery>(sql`
    WITH want AS (
      SELECT * FROM jsonb_to_recordset(${jsonParam(requests)})
        AS w("memberId" uuid, "presenceIds" jsonb, "limit" int)
      LIMIT ${requests.length}
    ),
    target AS (
      SELECT w."memberId" AS member_id, w."limit" AS lim, p.id AS presence_id, p.status
      FROM want w
      CROSS JOIN LATERAL (
        SELECT id, status FROM presences
        WHERE id = ANY (ARRAY(SELECT jsonb_array_elements_text(w."presenceIds")::uuid))
          AND disconnected_at IS NULL
        ORDER BY (status = 'idle') DESC, random()
        LIMIT 1
      ) p
    ),
    picked AS (
      SELECT d.id, t.presence_id
      FROM target t
      CROSS JOIN LATERAL (
        SELECT id FROM deliveries
        WHERE recipient_member_id = t.member_id AND state = 'queued' AND expires_at > now()
          AND (t.status = 'idle' OR priority = 'now')
        ORDER BY id
        LIMIT t.lim
        FOR UPDATE SKIP LOCKED
      ) d
    ),
    leased AS (
      UPDATE deliveries d
      SET state = 'leased', lease_presence_id = picked.presence_id,
          lease_expires_at = now() + make_interval(secs => ${leaseSeconds}),
          attempt = d.attempt + 1, delivered_at = coalesce(d.delivered_at, now())
      FROM picked
      WHERE d.id = picked.id
      RETURNING d.id, d.message_id, d.recipient_member_id, d.attempt, picked.presence_id
    )
    -- LIMIT 1 keeps each lookup a lateral index probe: joined plainly, a
    -- generic plan may hash the whole messages table on every claim.
    SELECT l.presence_id AS "presenceId", l.recipient_member_id AS "memberId", m.id AS "messageId",
           m.mesh_id AS "meshId", m.pubkey AS "senderPubkey", m.target_spec AS "targetSpec",
           m.priority, m.nonce, m.ciphertext, m.created_at AS "createdAt", m.reply_to AS "replyTo",
           l.attempt, l.id::float8 AS seq
    FROM leased l
    CROSS JOIN LATERAL (
      SELECT msg.id, msg.mesh_id, s.pubkey, msg.target_spec, msg.priority, msg.nonce, msg.ciphertext,
             ${isoTime("msg.created_at")} AS created_at, msg.reply_to
      FROM messages msg JOIN members s ON s.id = msg.sender_member_id
      WHERE msg.id = l.message_id
      LIMIT 1
    ) m`);
}

export interface AckRequest {
  memberId: string;
  messageId: string;
}

export async function ackDeliveries(db: Executor, acks: AckRequest[]): Promise<number> {
  if (acks.length === 0) return 0;
  // Locked in one order (message id) so concurrent ack batches cannot deadlock;
  // each lookup is an index probe on (message_id, recipient_member_id).
  const ordered = [...acks].sort((a, b) => (a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0));
  const rows = await db.rows<{ id: string }>(sql`
    UPDATE deliveries d
    SET state = 'acked', acked_at = now(), lease_presence_id = NULL, lease_expires_at = NULL
    FROM (
      SELECT found.id
      FROM (
        SELECT * FROM jsonb_to_recordset(${jsonParam(ordered)}) AS a("memberId" uuid, "messageId" uuid)
        LIMIT ${ordered.length}
      ) a
      CROSS JOIN LATERAL (
        SELECT id FROM deliveries
        WHERE message_id = a."messageId" AND recipient_member_id = a."memberId" AND state <> 'acked'
        LIMIT 1
        FOR UPDATE
      ) found
    ) hit
    WHERE d.id = hit.id
    RETURNING d.id`);
  return rows.length;
}

/** Returns leased deliveries to the queue (their push could not be written). */
export async function releaseDeliveries(db: Executor, leases: Array<{ messageId: string; presenceId: string }>) {
  if (leases.length === 0) return;
  await db.rows(sql`
    UPDATE deliveries d SET state = 'queued', lease_presence_id = NULL, lease_expires_at = NULL
    FROM jsonb_to_recordset(${jsonParam(leases)}) AS l("messageId" uuid, "presenceId" uuid)
    WHERE d.message_id = l."messageId" AND d.lease_presence_id = l."presenceId" AND d.state = 'leased'`);
}

/** Leases that ran out go back to the queue; returns the members to wake. */
export async function requeueExpiredLeases(db: Executor): Promise<string[]> {
  const rows = await db.rows<{ memberId: string }>(sql`
    UPDATE deliveries SET state = 'queued', lease_presence_id = NULL, lease_expires_at = NULL
    WHERE id IN (
      SELECT id FROM deliveries WHERE state = 'leased' AND lease_expires_at < now()
      ORDER BY id LIMIT 10000 FOR UPDATE SKIP LOCKED
    )
    RETURNING recipient_member_id AS "memberId"`);
  return [...new Set(rows.map((r) => r.memberId))];
}

/** Members with queued deliveries and a live presence on this instance: the catch-up after missed wake-ups. */
export async function membersWithQueuedWork(db: Executor, instanceId: string): Promise<string[]> {
  const rows = await db.rows<{ memberId: string }>(sql`
    SELECT DISTINCT p.member_id AS "memberId"
    FROM presences p
    WHERE p.instance_id = ${instanceId} AND p.disconnected_at IS NULL
      AND EXISTS (
        SELECT 1 FROM deliveries d
        WHERE d.recipient_member_id = p.member_id AND d.state = 'queued' AND d.expires_at > now()
      )`);
  return rows.map((r) => r.memberId);
}

export async function queueDepth(db: Executor): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    SELECT count(*)::int AS n FROM deliveries WHERE state <> 'acked'`);
  return rows[0]?.n ?? 0;
}
