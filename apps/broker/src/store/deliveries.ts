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
    ),
    target AS (
      SELECT w."memberId" AS member_id, w."limit" AS lim, p.id AS presence_id, p.status
      FROM want w
      CROSS JOIN LATERAL (
        SELECT id, status FROM presences
        WHERE id IN (SELECT jsonb_array_elements_text(w."presenceIds")::uuid)
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
    )
    UPDATE deliveries d
    SET state = 'leased', lease_presence_id = picked.presence_id,
        lease_expires_at = now() + make_interval(secs => ${leaseSeconds}),
        attempt = d.attempt + 1, delivered_at = coalesce(d.delivered_at, now())
    FROM picked, messages m, members s
    WHERE d.id = picked.id AND m.id = d.message_id AND s.id = m.sender_member_id
    RETURNING picked.presence_id AS "presenceId", d.recipient_member_id AS "memberId", m.id AS "messageId",
              m.mesh_id AS "meshId", s.pubkey AS "senderPubkey", m.target_spec AS "targetSpec",
              m.priority, m.nonce, m.ciphertext, ${isoTime("m.created_at")} AS "createdAt",
              m.reply_to AS "replyTo", d.attempt, d.id::float8 AS seq`);
}

export interface AckRequest {
  memberId: string;
  messageId: string;
}

export async function ackDeliveries(db: Executor, acks: AckRequest[]): Promise<number> {
  if (acks.length === 0) return 0;
  const rows = await db.rows<{ id: string }>(sql`
    UPDATE deliveries d
    SET state = 'acked', acked_at = now(), lease_presence_id = NULL, lease_expires_at = NULL
    WHERE d.id IN (
      SELECT d2.id FROM deliveries d2
      JOIN jsonb_to_recordset(${jsonParam(acks)}) AS a("memberId" uuid, "messageId" uuid)
        ON d2.recipient_member_id = a."memberId" AND d2.message_id = a."messageId"
      WHERE d2.state <> 'acked'
      ORDER BY d2.id
      FOR UPDATE
    )
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
