// Channel membership: a member joins and leaves #channels of its mesh.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

/**
 * Joins unless the member is in `maxChannels` channels already; false then.
 * Joining a channel the member is in already changes nothing and is true.
 */
export async function joinChannel(
  db: Executor,
  meshId: string,
  channel: string,
  memberId: string,
  maxChannels: number,
): Promise<boolean> {
  const rows = await db.rows<{ member: boolean }>(sql`
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

export async function leaveChannel(db: Executor, meshId: string, channel: string, memberId: string): Promise<void> {
  await db.rows(sql`
    DELETE FROM channel_members WHERE mesh_id = ${meshId} AND channel = ${channel} AND member_id = ${memberId}`);
}
