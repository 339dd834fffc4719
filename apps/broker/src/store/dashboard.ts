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

/** The rooms an overview shows, and whether there are more. */
export interface RoomsShown {
  rooms: RoomRow[];
  more: boolean;
}

/**
 * The busiest `limit` rooms: those with live connections first, most first,
 * found from the live presences; then, while there is room, rooms nobody is
 * connected to, read in the key's order until enough are found. Never a walk
 * of every channel membership: with thousands of meshes each in dozens of
 * channels that took seconds, every refresh of every open dashboard.
 */
export async function rooms(db: Executor, limit: number): Promise<RoomsShown> {
  const rows = await db.rows<RoomRow>(sql`
    WITH live AS (
      SELECT c.mesh_id, m.slug, c.channel, count(*)::int AS connections
      FROM presences p
      JOIN channel_members c ON c.member_id = p.member_id
      JOIN meshes m ON m.id = c.mesh_id
      WHERE p.disconnected_at IS NULL AND p.member_id IS NOT NULL
      GROUP BY c.mesh_id, m.slug, c.channel
      ORDER BY connections DESC, m.slug, c.channel
      LIMIT ${limit + 1}
    ), idle AS (
      SELECT c.mesh_id, c.channel
      FROM channel_members c
      -- A revoked member's rows stay, but routing delivers nothing to it.
      JOIN members mb ON mb.id = c.member_id AND mb.revoked_at IS NULL
      WHERE NOT EXISTS (SELECT 1 FROM live l WHERE l.mesh_id = c.mesh_id AND l.channel = c.channel)
      GROUP BY c.mesh_id, c.channel
      ORDER BY c.mesh_id, c.channel
      LIMIT ${limit + 1}
    ), shown AS (
      SELECT mesh_id, slug, channel, connections FROM live
      UNION ALL
      SELECT i.mesh_id, m.slug, i.channel, 0 FROM idle i JOIN meshes m ON m.id = i.mesh_id
      ORDER BY connections DESC, slug, channel
      LIMIT ${limit + 1}
    )
    SELECT s.mesh_id::text AS "meshId", s.slug AS "meshSlug", s.channel,
           (SELECT count(*) FROM channel_members c JOIN members mb ON mb.id = c.member_id AND mb.revoked_at IS NULL
            WHERE c.mesh_id = s.mesh_id AND c.channel = s.channel)::int AS members,
           s.connections
    FROM shown s
    ORDER BY s.connections DESC, s.slug, s.channel`);
  return { rooms: rows.slice(0, limit), more: rows.length > limit };
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
