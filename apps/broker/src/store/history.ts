// Channel history: a channel's stored messages, newest page first, read
// through messages_channel_history_idx (mesh_id, target_spec, seq) WHERE
// target_spec LIKE '#%'. The LIKE is repeated in the query so the planner
// may use that partial index; `seq` is the insertion order (created_at is
// shared by a whole group commit). docs/protocol.md shows the plan.
import type { Executor } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";
import type { OwedMessage } from "./queue/types.ts";
import { isoTime } from "./sql.ts";

export interface HistoryPage {
  meshId: string;
  channel: string;
  /** Only messages older than this one; it must be a message of the same channel. */
  before: string | null;
  limit: number;
  /**
   * The page ends before the message that would take its content (nonce
   * and ciphertext) past this many bytes; its first message is always in it.
   */
  maxBytes: number;
  /** Messages older than this many seconds are not history any more. */
  retentionSeconds: number;
}

export interface HistoryRows {
  /** Newest first (the service reverses them). */
  messages: OwedMessage[];
  /** Whether older retained messages are left for another page. */
  more: boolean;
}

/**
 * The statement of one page, newest first: one more row than the limit is
 * read, each with the content bytes up to it, and those past the limit or
 * the byte budget are left out (only their existence is answered, `more`).
 * The page is cut here, not in the broker: a page of 200 large messages,
 * read and encoded whole, held the broker's thread for a third of a second.
 * Exported for its plan.
 */
export function historyQuery(page: HistoryPage): SQL {
  const older =
    page.before === null
      ? sql``
      : sql`AND m.seq < (SELECT b.seq FROM messages b
            WHERE b.id = ${page.before}::uuid AND b.mesh_id = ${page.meshId}::uuid AND b.target_spec = ${page.channel})`;
  return sql`
    WITH read AS (
      SELECT m.id, m.mesh_id, m.sender_member_id, m.target_spec, m.priority, m.nonce, m.ciphertext, m.created_at, m.reply_to,
             row_number() OVER newest AS n,
             sum(octet_length(m.nonce) + octet_length(m.ciphertext)) OVER newest AS upto
      FROM messages m
      WHERE m.mesh_id = ${page.meshId}::uuid AND m.target_spec = ${page.channel} AND m.target_spec LIKE '#%'
        AND m.created_at > now() - make_interval(secs => ${page.retentionSeconds})
        ${older}
      WINDOW newest AS (ORDER BY m.seq DESC ROWS UNBOUNDED PRECEDING)
      ORDER BY m.seq DESC
      LIMIT ${page.limit + 1}
    )
    SELECT r.id::text AS "messageId", r.mesh_id::text AS "meshId", s.pubkey AS "senderPubkey",
           r.target_spec AS "targetSpec", r.priority, r.nonce, r.ciphertext,
           ${isoTime("r.created_at")} AS "createdAt", r.reply_to::text AS "replyTo",
           count(*) OVER () < (SELECT count(*) FROM read) AS more
    FROM read r JOIN members s ON s.id = r.sender_member_id
    WHERE r.n <= ${page.limit} AND (r.n = 1 OR r.upto <= ${page.maxBytes})
    ORDER BY r.n`;
}

export async function historyPage(db: Executor, page: HistoryPage): Promise<HistoryRows> {
  const rows = await db.rows<OwedMessage & { more: boolean }>(historyQuery(page));
  return { messages: rows.map(({ more: _, ...message }) => message), more: rows[0]?.more ?? false };
}

export async function isChannelMember(db: Executor, meshId: string, channel: string, memberId: string): Promise<boolean> {
  const rows = await db.rows(sql`
    SELECT 1 FROM channel_members
    WHERE mesh_id = ${meshId}::uuid AND channel = ${channel} AND member_id = ${memberId}::uuid`);
  return rows.length === 1;
}
