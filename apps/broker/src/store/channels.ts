import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

export async function joinChannel(db: Executor, meshId: string, channel: string, memberId: string): Promise<void> {
  await db.rows(sql`
    INSERT INTO channel_members (mesh_id, channel, member_id) VALUES (${meshId}, ${channel}, ${memberId})
    ON CONFLICT DO NOTHING`);
}

export async function leaveChannel(db: Executor, meshId: string, channel: string, memberId: string): Promise<void> {
  await db.rows(sql`
    DELETE FROM channel_members WHERE mesh_id = ${meshId} AND channel = ${channel} AND member_id = ${memberId}`);
}
