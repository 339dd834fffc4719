// Presences: one row per live WebSocket connection of a member. A presence
// is inserted by an admitted hello and ended (disconnected_at) by its close,
// its replacement, its member's revocation or its instance's death.
import type { Executor } from "@switchboard/db";
import type { Priority, Status, StatusSource } from "@switchboard/protocol";
import { sql } from "drizzle-orm";
import { receivable, receivesOnSockets } from "./queue/eligibility.ts";
import { requeue } from "./queue/requeue.ts";
import { ageMs, batchLimit, isoTime, jsonParam, unique, uuidArray, uuidRows } from "./sql.ts";

export interface NewPresence {
  id: string;
  meshId: string;
  memberId: string;
  instanceId: string;
  sessionId: string;
  pid: number | null;
  cwd: string | null;
  displayName: string;
  status: Status;
  statusSource: StatusSource;
  /** How long ago the status was set; null for a default status: its timestamp is the epoch, so the first real signal of any source applies. */
  statusAgeMs: number | null;
}

export interface PresenceRef {
  id: string;
  instanceId: string;
}

export interface EndedSession extends PresenceRef {
  memberId: string;
  sessionId: string;
  /** Its status as it ended: the latest, written after any hook that held its row. */
  status: Status;
  statusSource: StatusSource;
  /** Milliseconds since that status was set. */
  ageMs: number;
}

/**
 * Ends the live presences of these members' sessions, if any; returns them.
 * Each session's is probed by (member, session) and updated by its id: joined
 * to the sessions, a plan made while the statistics said the table was empty
 * hashed every presence, live or gone.
 */
export async function endSessions(tx: Executor, sessions: Array<{ memberId: string; sessionId: string }>): Promise<EndedSession[]> {
  if (sessions.length === 0) return [];
  // Locked in the order of their ids, as every statement that locks more than one presence.
  return tx.rows<EndedSession>(sql`
    UPDATE presences p SET disconnected_at = now()
    WHERE p.disconnected_at IS NULL AND p.id = ANY (ARRAY(
      SELECT id FROM presences WHERE id = ANY (ARRAY(
        SELECT live.id
        FROM (SELECT * FROM jsonb_to_recordset(${jsonParam(sessions)}) AS s("memberId" uuid, "sessionId" text)
              LIMIT ${batchLimit(sessions.length)}) s
        CROSS JOIN LATERAL (
          SELECT id FROM presences
          WHERE member_id = s."memberId" AND session_id = s."sessionId" AND disconnected_at IS NULL
          OFFSET 0) live))
      ORDER BY id FOR UPDATE))
    RETURNING p.id, p.instance_id AS "instanceId", p.member_id AS "memberId", p.session_id AS "sessionId",
              p.status, p.status_source AS "statusSource",
              ${ageMs("p.status_updated_at")} AS "ageMs"`);
}

/** How many live presences a mesh, and one member, may have. */
export interface PresenceCaps {
  perMesh: number;
  perMember: number;
}

/** The presences inserted, and of the others those refused because their member was at its cap (the rest found the mesh full). */
export interface CappedInsert {
  inserted: Set<string>;
  memberFull: Set<string>;
}

// Inserts new presences only while their member and their mesh stay under
// their caps, and writes their audit rows, in one statement. The caller holds
// the meshes' row locks (a member's presences are its mesh's), so the counts
// are exact. Presences that replace one (whose slot the caller freed) come
// first, the others in the order given; one refused by its member's cap takes
// no place under the mesh's. A presence neither inserted nor in memberFull was
// refused for want of room in its mesh.
export async function insertPresencesWithinCap(
  tx: Executor,
  presences: Array<NewPresence & { replaced: string | null }>,
  caps: PresenceCaps,
): Promise<CappedInsert> {
  if (presences.length === 0) return { inserted: new Set(), memberFull: new Set() };
  const rows = await tx.rows<{ id: string; memberFull: boolean }>(sql`
    WITH q AS (
      SELECT q.*, row_number() OVER (PARTITION BY q."memberId" ORDER BY (q.replaced IS NULL), q.ord) AS member_rank
      FROM jsonb_to_recordset(${jsonParam(presences.map((p, ord) => ({ ...p, ord })))})
        AS q(ord int, id uuid, "meshId" uuid, "memberId" uuid, "instanceId" text, "sessionId" text, pid int, cwd text,
             "displayName" text, status text, "statusSource" text, "statusAgeMs" float8, replaced uuid)
    ),
    -- Live presences counted by a subquery run for each member and each
    -- mesh: as a join to presences, a plan made while the statistics said the
    -- table was empty walked every live presence of every mesh.
    member_live AS (
      SELECT m."memberId" AS member_id,
             (SELECT count(*) FROM presences p WHERE p.member_id = m."memberId" AND p.disconnected_at IS NULL) AS n
      FROM (SELECT DISTINCT "memberId" FROM q) m
    ),
    within_member AS (
      SELECT q.*, row_number() OVER (PARTITION BY q."meshId" ORDER BY (q.replaced IS NULL), q.ord) AS mesh_rank
      FROM q LEFT JOIN member_live ml ON ml.member_id = q."memberId"
      WHERE coalesce(ml.n, 0) + q.member_rank <= ${caps.perMember}
    ),
    mesh_live AS (
      SELECT m."meshId" AS mesh_id,
             (SELECT count(*) FROM presences p WHERE p.mesh_id = m."meshId" AND p.disconnected_at IS NULL) AS n
      FROM (SELECT DISTINCT "meshId" FROM within_member) m
    ),
    inserted AS (
      INSERT INTO presences (id, mesh_id, member_id, instance_id, session_id, pid, cwd, display_name,
                             status, status_source, status_updated_at)
      SELECT w.id, w."meshId", w."memberId", w."instanceId", w."sessionId", w.pid, w.cwd, w."displayName",
             w.status, w."statusSource",
             CASE WHEN w."statusAgeMs" IS NULL THEN to_timestamp(0) ELSE now() - make_interval(secs => w."statusAgeMs" / 1000) END
      FROM within_member w LEFT JOIN mesh_live l ON l.mesh_id = w."meshId"
      WHERE coalesce(l.n, 0) + w.mesh_rank <= ${caps.perMesh}
      ORDER BY w.ord
      RETURNING id, mesh_id, member_id
    ),
    audited AS (
      INSERT INTO audit_log (event, mesh_id, member_id, meta)
      SELECT 'connect', i.mesh_id, i.member_id,
             jsonb_build_object('presenceId', i.id, 'sessionId', q."sessionId", 'instanceId', q."instanceId",
                                'replaced', q.replaced)
      FROM inserted i JOIN q ON q.id = i.id
    )
    SELECT id, false AS "memberFull" FROM inserted
    UNION ALL
    -- Past its member's cap only if the member's live and admitted presences
    -- reach it: where the mesh cap refused the member's earlier hellos of
    -- the batch, it would have refused this one too, and the mesh is full.
    SELECT q.id, true FROM q LEFT JOIN member_live ml ON ml.member_id = q."memberId"
    WHERE q.id NOT IN (SELECT id FROM within_member)
      AND coalesce(ml.n, 0) + (SELECT count(*) FROM inserted i WHERE i.member_id = q."memberId") >= ${caps.perMember}`);
  return {
    inserted: new Set(rows.filter((r) => !r.memberFull).map((r) => r.id)),
    memberFull: new Set(rows.filter((r) => r.memberFull).map((r) => r.id)),
  };
}

/** Marks presences gone and puts what was leased to them back in the queue; returns their members. */
export async function disconnectPresences(tx: Executor, presenceIds: string[]): Promise<string[]> {
  if (presenceIds.length === 0) return [];
  // The presence rows first, then their leases: the order a hello replacing
  // a session takes them in (endSessions), so the two cannot deadlock. The
  // rows in the order of their ids, as every statement locking more than one
  // presence takes them (the TTL sweep, a revocation).
  const rows = await tx.rows<{ memberId: string }>(sql`
    UPDATE presences SET disconnected_at = coalesce(disconnected_at, now())
    WHERE id = ANY (ARRAY(SELECT id FROM presences WHERE id = ANY (${uuidArray(presenceIds)}) ORDER BY id FOR UPDATE))
    RETURNING member_id AS "memberId"`);
  await requeue(tx, { presences: presenceIds });
  return unique(rows.map((r) => r.memberId));
}

/** How many presences of this instance are live in the database. */
export async function countLivePresencesOfInstance(db: Executor, instanceId: string): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    SELECT count(*)::int AS n FROM presences WHERE instance_id = ${instanceId} AND disconnected_at IS NULL`);
  return rows[0]?.n ?? 0;
}

/** Live presences of this instance connected longer ago than minAgeSeconds. */
export async function settledPresencesOfInstance(
  db: Executor,
  instanceId: string,
  minAgeSeconds: number,
): Promise<Array<{ presenceId: string; memberId: string; meshId: string }>> {
  return db.rows(sql`
    SELECT id AS "presenceId", member_id AS "memberId", mesh_id AS "meshId" FROM presences
    WHERE instance_id = ${instanceId} AND disconnected_at IS NULL
      AND connected_at < now() - make_interval(secs => ${minAgeSeconds})`);
}

export async function livePresenceIdsOfInstance(tx: Executor, instanceId: string): Promise<string[]> {
  const rows = await tx.rows<{ id: string }>(sql`
    SELECT id FROM presences WHERE instance_id = ${instanceId} AND disconnected_at IS NULL`);
  return rows.map((r) => r.id);
}

/**
 * Of these members' live presences, those whose status lets a message of
 * this priority through now (none of a webhook member), but those of
 * another instance that stopped or whose lease ran out (dead, or late to
 * renew it: after an outage, until it renews; not reaped yet); those of the
 * instance that renewed its lease last first. An instance killed moments ago
 * renews no more: its presences stay live until it is reaped, 10 to 20 s on,
 * and a recipient with a socket there and another elsewhere would meanwhile
 * be handed to the dead one whenever it came first. The asking instance's
 * own are live while it serves, whatever its lease says.
 */
export async function presencesReceiving(
  db: Executor,
  memberIds: string[],
  priority: Priority,
  instanceId: string,
): Promise<Array<{ presenceId: string; memberId: string; instanceId: string }>> {
  if (memberIds.length === 0) return [];
  return db.rows(sql`
    SELECT p.id AS "presenceId", p.member_id AS "memberId", p.instance_id AS "instanceId"
    FROM presences p JOIN broker_instances i ON i.id = p.instance_id
    WHERE p.disconnected_at IS NULL AND p.member_id = ANY (${uuidArray(memberIds)})
      AND ${receivable(sql`p.status`, sql`${priority}::text`)} AND ${receivesOnSockets(sql`p.member_id`)}
      AND (p.instance_id = ${instanceId} OR (i.lease_expires_at > now() AND i.stopped_at IS NULL))
    ORDER BY i.lease_expires_at DESC`);
}

export interface PeerRow {
  pubkey: string;
  displayName: string;
  sessionId: string;
  status: Status;
  statusSource: StatusSource;
  connectedAt: string;
}

export async function livePeersOfMesh(db: Executor, meshId: string): Promise<PeerRow[]> {
  // Each presence's member probed by its id (OFFSET 0 keeps it a probe):
  // joined, on statistics in which one mesh holds most presences, a small
  // mesh's few were merged with a walk of every member by id.
  return db.rows<PeerRow>(sql`
    SELECT mb.pubkey, mb.display_name AS "displayName", p.session_id AS "sessionId", p.status,
           p.status_source AS "statusSource", ${isoTime("p.connected_at")} AS "connectedAt"
    FROM presences p
    CROSS JOIN LATERAL (SELECT pubkey, display_name, revoked_at FROM members WHERE id = p.member_id OFFSET 0) mb
    WHERE p.mesh_id = ${meshId} AND p.disconnected_at IS NULL AND mb.revoked_at IS NULL
    ORDER BY mb.display_name, mb.pubkey, p.connected_at`);
}

export interface EndedPresence {
  presenceId: string;
  reason: "replaced" | "revoked";
}

/**
 * Of these live sockets' presences, those whose member was revoked or whose
 * session another presence took over: their close may have travelled by a
 * wake-up that was missed. A presence ended without a successor (its instance
 * was reaped) is not listed; the instance's lease check handles that. Each
 * presence is probed by its id alone (uuidRows): as `id = ANY (…)`, a plan
 * made while the statistics said the table was empty walked every presence,
 * live or gone, through the index of sessions.
 */
export async function endedPresences(db: Executor, presenceIds: string[]): Promise<EndedPresence[]> {
  if (presenceIds.length === 0) return [];
  return db.rows<EndedPresence>(sql`
    SELECT p.id AS "presenceId", CASE WHEN m.revoked_at IS NOT NULL THEN 'revoked' ELSE 'replaced' END AS reason
    FROM ${uuidRows(presenceIds)} x
    CROSS JOIN LATERAL (SELECT id, member_id, session_id FROM presences WHERE id = x.id OFFSET 0) p
    JOIN members m ON m.id = p.member_id
    WHERE m.revoked_at IS NOT NULL OR EXISTS (
      SELECT 1 FROM presences q
      WHERE q.member_id = p.member_id AND q.session_id = p.session_id
        AND q.disconnected_at IS NULL AND q.id <> p.id)`);
}
