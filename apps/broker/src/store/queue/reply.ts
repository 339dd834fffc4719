// Replies for a waiting HTTP sender (docs/http.md, "?wait"). While a
// message's reply_wait_until is ahead, replies to it owed to its sender are
// written leased to the message's own id (enqueue.ts): the waiting request
// takes one (leased or queued → acked), and when it returns, the wait ends
// and what it did not take goes back to the queue.
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

/** A reply as TakenReply's fields, from its message `m` and sender `s`. */
const replyColumns = (attempt: SQL) => sql`
  m.id AS "messageId", m.mesh_id AS "meshId", s.pubkey AS "senderPubkey", m.target_spec AS "targetSpec",
  m.priority, m.nonce, m.ciphertext, ${isoTime("m.created_at")} AS "createdAt", m.reply_to AS "replyTo", ${attempt} AS attempt`;

/**
 * Holds replies to `requestId` owed to its sender for `seconds` more, or
 * longer if another wait holds them longer. Returns when this hold ends (the
 * database's text, to the microsecond), which endReplyWait needs; null when
 * the sender has no such message.
 */
export async function holdReplies(db: Executor, requestId: string, senderId: string, seconds: number): Promise<string | null> {
  const rows = await db.rows<{ until: string }>(sql`
    UPDATE messages SET reply_wait_until = greatest(reply_wait_until, now() + make_interval(secs => ${seconds}))
    WHERE id = ${requestId}::uuid AND sender_member_id = ${senderId}::uuid
    RETURNING (now() + make_interval(secs => ${seconds}))::text AS until`);
  return rows[0]?.until ?? null;
}

/**
 * For each request, its `count` oldest replies owed to `memberId` that are
 * held for its waiters or still queued (as many as it has waiters),
 * acknowledged in the same statement: one statement for all of a member's
 * waiting requests. Replies are found through the reply_to index; each is
 * one index probe of deliveries.
 */
export async function takeReplies(
  db: Executor,
  memberId: string,
  requests: ReadonlyArray<{ requestId: string; count: number }>,
): Promise<TakenReply[]> {
  if (requests.length === 0) return [];
  return db.rows<TakenReply>(sql`
    WITH hit AS (
      SELECT h.id FROM jsonb_to_recordset(${jsonParam(requests)}) AS q("requestId" uuid, count int)
      CROSS JOIN LATERAL (
        SELECT d.id FROM messages r
        JOIN deliveries d ON d.message_id = r.id AND d.recipient_member_id = ${memberId}::uuid
        WHERE r.reply_to = q."requestId" AND d.expires_at > now()
          AND (d.state = 'queued' OR (d.state = 'leased' AND d.lease_presence_id = q."requestId"))
        ORDER BY d.id
        LIMIT q.count
        FOR UPDATE OF d SKIP LOCKED
      ) h
    ),
    ${movedToAcked("taken", sql`d.id = ANY (ARRAY(SELECT id FROM hit))`, "taken")}
    SELECT ${replyColumns(sql`t.attempt`)}
    FROM taken t JOIN messages m ON m.id = t.message_id JOIN members s ON s.id = m.sender_member_id
    -- Queue order: a request's first reply goes to its first waiter.
    ORDER BY t.id`);
}

/**
 * The first reply to `requestId` owed to `memberId` that was acknowledged
 * already: returned by an earlier wait (whose response its caller may never
 * have read), or taken by a socket once no wait held it.
 */
export async function takenReply(db: Executor, requestId: string, memberId: string): Promise<TakenReply | null> {
  const rows = await db.rows<TakenReply>(sql`
    SELECT ${replyColumns(sql`d.attempt`)}
    FROM messages m
    CROSS JOIN LATERAL ${deliveriesOfMessage(sql`m.id`)} d
    JOIN members s ON s.id = m.sender_member_id
    WHERE m.reply_to = ${requestId}::uuid AND d.recipient_member_id = ${memberId}::uuid AND d.state = 'acked'
    ORDER BY d.id
    LIMIT 1`);
  return rows[0] ?? null;
}

/**
 * A waiter is gone: unless another wait (a retry with the same key) holds the
 * replies past `heldUntil`, the waiter's own hold (null: unknown), later
 * replies are queued as usual and held ones go back to the queue. Returns
 * their recipients.
 */
export async function endReplyWait(tx: Executor, requestId: string, heldUntil: string | null): Promise<string[]> {
  const ended = await tx.rows(sql`
    UPDATE messages SET reply_wait_until = NULL
    WHERE id = ${requestId}::uuid AND (${heldUntil}::timestamptz IS NULL OR reply_wait_until <= ${heldUntil}::timestamptz)
    RETURNING id`);
  return ended.length === 0 ? [] : requeue(tx, { presences: [requestId] });
}
