// Claim: queued → leased. One statement leases work to many recipients.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { isoTime, jsonParam } from "../sql.ts";
import { receivable } from "./eligibility.ts";
import type { LeasedDelivery } from "./types.ts";

export interface ClaimRequest {
  memberId: string;
  /** The member's presences the caller can push to, with how many pushes each may take now. */
  presences: Array<{ id: string; room: number }>;
}

// Per member it picks one of the given presences (an idle one first, as it
// may take every priority), takes the oldest queued deliveries that
// presence's status lets through, up to its room, skipping rows another
// claimer holds, and leases them to it. The JSON input is capped with LIMIT n (see enqueue.ts).
export async function claimForPresences(
  db: Executor,
  requests: ClaimRequest[],
  leaseSeconds: number,
): Promise<LeasedDelivery[]> {
  if (requests.length === 0) return [];
  return db.rows<LeasedDelivery>(sql`
    WITH want AS (
      SELECT * FROM jsonb_to_recordset(${jsonParam(requests)})
        AS w("memberId" uuid, presences jsonb)
      LIMIT ${requests.length}
    ),
    target AS (
      SELECT w."memberId" AS member_id, p.room AS lim, p.id AS presence_id, p.status
      FROM want w
      CROSS JOIN LATERAL (
        SELECT pr.id, pr.status, x.room
        FROM jsonb_to_recordset(w.presences) AS x(id uuid, room int)
        JOIN presences pr ON pr.id = x.id AND pr.disconnected_at IS NULL
        ORDER BY (pr.status = 'idle') DESC, random()
        LIMIT 1
      ) p
    ),
    picked AS (
      SELECT d.id, t.presence_id
      FROM target t
      CROSS JOIN LATERAL (
        SELECT id FROM deliveries
        WHERE recipient_member_id = t.member_id AND state = 'queued' AND expires_at > now()
          AND ${receivable(sql`t.status`, sql`priority`)}
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

/** Deliveries not yet acknowledged, over all recipients. */
export async function queueDepth(db: Executor): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    SELECT count(*)::int AS n FROM deliveries WHERE state IN ('queued', 'leased')`);
  return rows[0]?.n ?? 0;
}
