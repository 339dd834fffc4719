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
  /** Messages older than this many seconds are not history any more. */
  retentionSeconds: number;
}

/** The statement of one page, newest first (the service reverses it). Exported for its plan. */
export function historyQuery(page: HistoryPage): SQL {
  const older =
    page.before === null
      ? sql``
      : sql`AND m.seq < (SELECT b.seq FROM messages b
            WHERE b.id = ${page.before}::uuid AND b.mesh_id = ${page.meshId}::uuid AND b.target_spec = ${page.channel})`;
  return sql`
    SELECT m.id::text AS "messageId", m.mesh_id::text AS "meshId", s.pubkey AS "senderPubkey",
           m.target_spec AS "targetSpec", m.priority, m.nonce, m.ciphertext,
           ${isoTime("m.created_at")} AS "createdAt", m.reply_to::text AS "replyTo"
    FROM messages m JOIN members s ON s.id = m.sender_member_id
    WHERE m.mesh_id = ${page.meshId}::uuid AND m.target_spec = ${page.channel} AND m.target_spec LIKE '#%'
      AND m.created_at > now() - make_interval(secs => ${page.retentionSeconds})
      ${older}
    ORDER BY m.seq DESC
    LIMIT ${page.limit}`;
}

export function historyPage(db: Executor, page: HistoryPage): Promise<OwedMessage[]> {
  return db.rows<OwedMessage>(historyQuery(page));
}

export async function isChannelMember(db: Executor, meshId: string, channel: string, memberId: string): Promise<boolean> {
  const rows = await db.rows(sql`
    SELECT 1 FROM channel_members
    WHERE mesh_id = ${meshId}::uuid AND channel = ${channel} AND member_id = ${memberId}::uuid`);
  return rows.length === 1;
}
