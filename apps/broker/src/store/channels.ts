// Channel membership: a member joins and leaves #channels of its mesh.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

/**
 * Joins unless the member is in `maxChannels` channels already; false then.
 * Joining a channel the member is in already changes nothing and is true.
 * In the transaction of lockMemberChannels, so the count is exact.
 */
export async function joinChannel(
  tx: Executor,
  meshId: string,
  channel: string,
  memberId: string,
  maxChannels: number,
): Promise<boolean> {
  const rows = await tx.rows<{ member: boolean }>(sql`
    WITH already AS (
      SELECT 1 FROM channel_members WHERE mesh_id = ${meshId} AND channel = ${channel} AND member_id = ${memberId}
    ),
    joined AS (
      INSERT INTO channel_members (mesh_id, channel, member_id)
      SELECT ${meshId}, ${channel}, ${memberId}
      WHERE NOT EXISTS (SELECT 1 FROM already)
        AND (SELECT count(*) FROM channel_members WHERE member_id = ${memberId}) < ${maxChannels}
      ON CONFLICT DO NOTHING
      RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM already) OR EXISTS (SELECT 1 FROM joined) AS member`);
  return rows[0]?.member ?? false;
}

/**
 * Takes the member's row lock first (one that send statements' foreign-key
 * checks do not wait for): its joins on every connection and
 * instance then go one after the other, each counting the channels the one
 * before it joined (a statement's snapshot is taken when it starts, so the
 * lock is taken by a statement of its own).
 */
export async function lockMemberChannels(tx: Executor, memberId: string): Promise<void> {
  await tx.rows(sql`SELECT 1 FROM members WHERE id = ${memberId} FOR NO KEY UPDATE`);
}

export async function leaveChannel(db: Executor, meshId: string, channel: string, memberId: string): Promise<void> {
  await db.rows(sql`
    DELETE FROM channel_members WHERE mesh_id = ${meshId} AND channel = ${channel} AND member_id = ${memberId}`);
}
