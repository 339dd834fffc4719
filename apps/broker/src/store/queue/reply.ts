// Replies for a waiting HTTP sender (docs/http.md, "?wait"). While a
// message's reply_wait_until is ahead, replies to it owed to its sender are
// written leased to the message's own id (enqueue.ts): the waiting requests
// take the first (leased or queued → acked), and when the last of them
// returns, what they did not take goes back to the queue.
import type { Executor } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";
import { isoTime, jsonParam } from "../sql.ts";
import { movedToAcked } from "./ack.ts";
import { deliveriesOfMessage } from "./message-deliveries.ts";
import { requeue } from "./requeue.ts";
import type { OwedMessage } from "./types.ts";

export interface TakenReply extends OwedMessage {
  attempt: number;
}

/** A reply a look found for a waiting request. */
export interface FoundReply extends TakenReply {
  /**
   * Taken by this look while more than one wait holds the request's replies:
   * a wait on another instance whose look ran beside this one could not see
   * the take, and learns of it only if told.
   */
  sharedHold: boolean;
  /** Acknowledged by this look (not found acknowledged already). */
  takenNow: boolean;
}

/** A reply as TakenReply's fields, from its message `m` and sender `s`. */
const replyColumns = (attempt: SQL) => sql`
  m.id AS "messageId", m.mesh_id AS "meshId", s.pubkey AS "senderPubkey", m.target_spec AS "targetSpec",
  m.priority, m.nonce, m.ciphertext, ${isoTime("m.created_at")} AS "createdAt", m.reply_to AS "replyTo", ${attempt} AS attempt`;

/**
 * Holds replies to `requestId` owed to its sender for `seconds` more, or
 * longer if another wait holds them longer, and counts this wait among those
 * holding them (a hold that had run out counts from none). Returns when this
 * hold ends (the database's text, to the microsecond), which endReplyWait
 * needs; null when the sender has no such message.
 */
export async function holdReplies(db: Executor, requestId: string, senderId: string, seconds: number): Promise<string | null> {
  const rows = await db.rows<{ until: string }>(sql`
    UPDATE messages
    SET reply_waits = CASE WHEN reply_wait_until > now() THEN coalesce(reply_waits, 0) + 1 ELSE 1 END,
        reply_wait_until = greatest(reply_wait_until, now() + make_interval(secs => ${seconds}))
    WHERE id = ${requestId}::uuid AND sender_member_id = ${senderId}::uuid
    RETURNING (now() + make_interval(secs => ${seconds}))::text AS until`);
  return rows[0]?.until ?? null;
}

/**
 * For each of the member's waiting requests, its first reply owed to the
 * member: one acknowledged already (an earlier wait on the request returned
 * it, in a response its caller may never have read; or the member's sockets
 * took it once no wait held it), else the oldest held for the waits, still
 * queued, or pushed to another of the member's consumers (a socket, a
 * webhook request) that has not acknowledged it yet: acknowledged in this
 * statement (that consumer's ack then changes nothing). A retry's wait
 * would otherwise see that reply only once acknowledged, and no news of an
 * ack wakes it. Every wait on a request (retries
 * with its key) answers with that one reply. One statement for all of a
 * member's waiting requests; each reply found through the reply_to index,
 * each delivery by an index probe.
 */
export async function takeReplies(db: Executor, memberId: string, requestIds: readonly string[]): Promise<FoundReply[]> {
  if (requestIds.length === 0) return [];
  return db.rows<FoundReply>(sql`
    WITH q AS (
      SELECT "requestId" FROM jsonb_to_recordset(${jsonParam(requestIds.map((requestId) => ({ requestId })))}) AS q("requestId" uuid)
    ),
    earlier AS (
      SELECT e.id, e.message_id, e.attempt, q."requestId" FROM q
      CROSS JOIN LATERAL (
        SELECT d.id, r.id AS message_id, d.attempt FROM messages r
        CROSS JOIN LATERAL ${deliveriesOfMessage(sql`r.id`)} d
        WHERE r.reply_to = q."requestId" AND d.recipient_member_id = ${memberId}::uuid AND d.state = 'acked'
        ORDER BY d.id
        LIMIT 1
      ) e
    ),
    hit AS (
      SELECT h.id FROM q
      CROSS JOIN LATERAL (
        SELECT d.id FROM messages r
        JOIN deliveries d ON d.message_id = r.id AND d.recipient_member_id = ${memberId}::uuid
        WHERE r.reply_to = q."requestId" AND d.expires_at > now()
          AND d.state IN ('queued', 'leased')
        ORDER BY d.id
        LIMIT 1
        FOR UPDATE OF d SKIP LOCKED
      ) h
      WHERE q."requestId" NOT IN (SELECT "requestId" FROM earlier)
    ),
    ${movedToAcked("taken", sql`d.id = ANY (ARRAY(SELECT id FROM hit))`, "taken")}
    SELECT ${replyColumns(sql`t.attempt`)},
           t.fresh AND coalesce((SELECT req.reply_waits FROM messages req WHERE req.id = m.reply_to), 0) > 1 AS "sharedHold",
           t.fresh AS "takenNow"
    FROM (SELECT id, message_id, attempt, true AS fresh FROM taken UNION ALL SELECT id, message_id, attempt, false FROM earlier) t
    JOIN messages m ON m.id = t.message_id JOIN members s ON s.id = m.sender_member_id`);
}

/**
 * A reply takeReplies acknowledged for a wait whose caller went away before
 * it was answered goes back to the member's queue (acked → queued), as if
 * never taken. Returns its recipient when it went back.
 */
export async function returnTakenReply(tx: Executor, replyId: string, memberId: string): Promise<string[]> {
  const back = await tx.rows<{ memberId: string }>(sql`
    WITH taken AS (
      DELETE FROM acked_deliveries WHERE message_id = ${replyId}::uuid AND recipient_member_id = ${memberId}::uuid
      RETURNING id, message_id, recipient_member_id, priority, attempt, created_at, expires_at, delivered_at
    )
    INSERT INTO deliveries (id, message_id, recipient_member_id, priority, state, attempt, created_at, expires_at, delivered_at)
    SELECT id, message_id, recipient_member_id, priority, 'queued', attempt, created_at, expires_at, delivered_at FROM taken
    RETURNING recipient_member_id AS "memberId"`);
  return back.map((row) => row.memberId);
}

/**
 * A wait on `requestId` ended: it no longer counts among those holding the
 * replies, and when it was the last (or the count is unknown: a hold placed
 * by a broker from before it), later replies are queued as usual and held
 * ones go back to the queue. Nothing when its own hold (`heldUntil`; null:
 * none) has run out: a hold placed since then counts its waits afresh.
 * Returns whether the hold was released, and the recipients of what went back.
 */
export async function endReplyWait(tx: Executor, requestId: string, heldUntil: string | null): Promise<{ released: boolean; members: string[] }> {
  const last = sql`coalesce(reply_waits, 1) <= 1`;
  const ended = await tx.rows<{ released: boolean }>(sql`
    UPDATE messages
    SET reply_waits = CASE WHEN ${last} THEN NULL ELSE reply_waits - 1 END,
        reply_wait_until = CASE WHEN ${last} THEN NULL ELSE reply_wait_until END
    WHERE id = ${requestId}::uuid AND ${heldUntil}::timestamptz > now() AND reply_wait_until >= ${heldUntil}::timestamptz
    RETURNING reply_wait_until IS NULL AS released`);
  if (ended[0]?.released !== true) return { released: false, members: [] };
  return { released: true, members: await requeue(tx, { presences: [requestId] }) };
}
