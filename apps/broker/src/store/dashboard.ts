// What the operator's dashboard reads: meshes with their counts, members with
// their live presences, instances with their leases, connections per room,
// and how many messages were written so far.
import type { Executor } from "@switchboard/db";
import type { Status, StatusSource } from "@switchboard/protocol";
import { sql } from "drizzle-orm";
import { isoTime } from "./sql.ts";

export interface MeshSummary {
  id: string;
  slug: string;
  name: string;
  members: number;
  presences: number;
}

export function meshSummaries(db: Executor): Promise<MeshSummary[]> {
  return db.rows<MeshSummary>(sql`
    SELECT m.id::text AS id, m.slug, m.name,
           (SELECT count(*) FROM members mb WHERE mb.mesh_id = m.id AND mb.revoked_at IS NULL)::int AS members,
           (SELECT count(*) FROM presences p WHERE p.mesh_id = m.id AND p.disconnected_at IS NULL)::int AS presences
    FROM meshes m ORDER BY m.created_at, m.slug`);
}

export interface MemberPresences {
  memberId: string;
  pubkey: string;
  displayName: string;
  role: "member" | "observer";
  presences: Array<{
    presenceId: string;
    sessionId: string;
    displayName: string;
    status: Status;
    statusSource: StatusSource;
    connectedAt: string;
    instanceId: string;
  }>;
}

/** The mesh's non-revoked members, each with its live presences (none: offline). */
export async function membersWithPresences(db: Executor, meshId: string): Promise<MemberPresences[]> {
  const rows = await db.rows<Omit<MemberPresences, "presences"> & { presences: string }>(sql`
    SELECT mb.id::text AS "memberId", mb.pubkey, mb.display_name AS "displayName", mb.role,
           coalesce((
             SELECT json_agg(json_build_object(
                      'presenceId', p.id::text, 'sessionId', p.session_id, 'displayName', p.display_name,
                      'status', p.status, 'statusSource', p.status_source,
                      'connectedAt', ${isoTime("p.connected_at")}, 'instanceId', p.instance_id)
                    ORDER BY p.connected_at)
             FROM presences p WHERE p.member_id = mb.id AND p.disconnected_at IS NULL), '[]')::text AS presences
    FROM members mb
    WHERE mb.mesh_id = ${meshId}::uuid AND mb.revoked_at IS NULL
    ORDER BY mb.display_name, mb.pubkey`);
  return rows.map((r) => ({ ...r, presences: JSON.parse(r.presences) as MemberPresences["presences"] }));
}

export interface InstanceRow {
  id: string;
  hostname: string;
  pid: number;
  startedAt: string;
  /** Seconds until the lease runs out (negative: overdue, about to be reaped). */
  leaseRemainingSeconds: number;
  presences: number;
}

export function liveInstances(db: Executor): Promise<InstanceRow[]> {
  return db.rows<InstanceRow>(sql`
    SELECT i.id, i.hostname, i.pid, ${isoTime("i.started_at")} AS "startedAt",
           extract(epoch FROM i.lease_expires_at - now())::float8 AS "leaseRemainingSeconds",
           (SELECT count(*) FROM presences p WHERE p.instance_id = i.id AND p.disconnected_at IS NULL)::int AS presences
    FROM broker_instances i WHERE i.stopped_at IS NULL ORDER BY i.started_at`);
}

export interface RoomRow {
  meshId: string;
  meshSlug: string;
  channel: string;
  members: number;
  /** Live presences of the channel's members: the room's connections. */
  connections: number;
}

export function rooms(db: Executor): Promise<RoomRow[]> {
  return db.rows<RoomRow>(sql`
    SELECT c.mesh_id::text AS "meshId", m.slug AS "meshSlug", c.channel, count(DISTINCT c.member_id)::int AS members,
           count(p.id)::int AS connections
    FROM channel_members c
    JOIN meshes m ON m.id = c.mesh_id
    -- A revoked member's rows stay, but routing delivers nothing to it.
    JOIN members mb ON mb.id = c.member_id AND mb.revoked_at IS NULL
    LEFT JOIN presences p ON p.member_id = c.member_id AND p.disconnected_at IS NULL
    GROUP BY c.mesh_id, m.slug, c.channel
    ORDER BY connections DESC, m.slug, c.channel`);
}

/**
 * How many messages were ever written, by every instance: the messages'
 * `seq` sequence (its last value; 0 before the first). Two samples give the
 * send rate between them without reading the table.
 */
export async function messagesWritten(db: Executor): Promise<number> {
  const rows = await db.rows<{ written: number }>(sql`
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END::float8 AS written FROM messages_seq_seq`);
  return rows[0]?.written ?? 0;
}
