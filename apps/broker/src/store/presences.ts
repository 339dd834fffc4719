// Presences: one row per live WebSocket session of a member.
import type { Executor } from "@switchboard/db";
import type { Status, StatusSource } from "@switchboard/protocol";
import { sql } from "drizzle-orm";
import { isoTime, jsonParam } from "./sql-util.ts";

export interface NewPresence {
  meshId: string;
  memberId: string;
  instanceId: string;
  sessionId: string;
  pid: number | null;
  cwd: string | null;
  displayName: string;
}

export interface PresenceRef {
  id: string;
  instanceId: string;
}

export interface PresenceStatusRow {
  id: string;
  memberId: string;
  status: Status;
  statusSource: StatusSource;
  /** Milliseconds since the status was last set. */
  ageMs: number;
}

/** Ends the live presence of this member and session, if any; returns it. */
export async function endSession(tx: Executor, memberId: string, sessionId: string): Promise<PresenceRef | null> {
  const rows = await tx.rows<PresenceRef>(sql`
    UPDATE presences SET disconnected_at = now()
    WHERE member_id = ${memberId} AND session_id = ${sessionId} AND disconnected_at IS NULL
    RETURNING id, instance_id AS "instanceId"`);
  return rows[0] ?? null;
}

export interface AdmittedRow extends NewPresence {
  id: string;
  /** A pending hook signal found for it, else null: it starts idle. */
  signalled: "idle" | "working" | null;
}

// Inserts the presence only while the mesh is under its cap, and writes its
// audit row, in one statement. The caller holds the mesh's row lock, so the
// count is exact; false means the mesh is full. Without a signal the status
// is a default, not a signal: its timestamp is the epoch, so the first real
// status from any source applies.
export async function insertPresenceWithinCap(
  tx: Executor,
  p: AdmittedRow,
  maxLive: number,
  auditMeta: Record<string, string | null>,
): Promise<boolean> {
  const rows = await tx.rows(sql`
    WITH inserted AS (
      INSERT INTO presences (id, mesh_id, member_id, instance_id, session_id, pid, cwd, display_name,
                             status, status_source, status_updated_at)
      SELECT ${p.id}::uuid, ${p.meshId}::uuid, ${p.memberId}::uuid, ${p.instanceId}, ${p.sessionId}, ${p.pid}::int,
             ${p.cwd}, ${p.displayName}, coalesce(${p.signalled}, 'idle'),
             CASE WHEN ${p.signalled}::text IS NULL THEN 'manual' ELSE 'hook' END,
             CASE WHEN ${p.signalled}::text IS NULL THEN to_timestamp(0) ELSE now() END
      WHERE (SELECT count(*) FROM presences WHERE mesh_id = ${p.meshId}::uuid AND disconnected_at IS NULL) < ${maxLive}
      RETURNING id, mesh_id, member_id
    )
    INSERT INTO audit_log (event, mesh_id, member_id, meta)
    SELECT 'connect', mesh_id, member_id, ${jsonParam(auditMeta)} FROM inserted
    RETURNING id`);
  return rows.length === 1;
}

/** Marks presences gone and puts what was leased to them back in the queue; returns their members. */
export async function disconnectPresences(tx: Executor, presenceIds: string[]): Promise<string[]> {
  if (presenceIds.length === 0) return [];
  const ids = jsonParam(presenceIds);
  await tx.rows(sql`
    UPDATE deliveries SET state = 'queued', lease_presence_id = NULL, lease_expires_at = NULL
    WHERE state = 'leased'
      AND lease_presence_id IN (SELECT jsonb_array_elements_text(${ids})::uuid)`);
  const rows = await tx.rows<{ memberId: string }>(sql`
    UPDATE presences SET disconnected_at = coalesce(disconnected_at, now())
    WHERE id IN (SELECT jsonb_array_elements_text(${ids})::uuid)
    RETURNING member_id AS "memberId"`);
  return [...new Set(rows.map((r) => r.memberId))];
}

export async function livePresenceIdsOfInstance(tx: Executor, instanceId: string): Promise<string[]> {
  const rows = await tx.rows<{ id: string }>(sql`
    SELECT id FROM presences WHERE instance_id = ${instanceId} AND disconnected_at IS NULL`);
  return rows.map((r) => r.id);
}

export async function lockPresenceStatus(tx: Executor, presenceId: string): Promise<PresenceStatusRow | null> {
  const rows = await tx.rows<PresenceStatusRow>(sql`
    SELECT id, member_id AS "memberId", status, status_source AS "statusSource",
           (extract(epoch FROM now() - status_updated_at) * 1000)::float8 AS "ageMs"
    FROM presences WHERE id = ${presenceId} AND disconnected_at IS NULL
    FOR UPDATE`);
  return rows[0] ?? null;
}

export async function writePresenceStatus(tx: Executor, presenceId: string, status: Status, source: StatusSource) {
  await tx.rows(sql`
    UPDATE presences SET status = ${status}, status_source = ${source}, status_updated_at = now()
    WHERE id = ${presenceId}`);
}

/** The TTL rule: presences stuck in working flip to idle (source jsonl). Returns their members. */
export async function expireWorkingStatus(db: Executor, ttlSeconds: number): Promise<string[]> {
  const rows = await db.rows<{ memberId: string }>(sql`
    UPDATE presences SET status = 'idle', status_source = 'jsonl', status_updated_at = now()
    WHERE disconnected_at IS NULL AND status = 'working'
      AND status_updated_at < now() - make_interval(secs => ${ttlSeconds})
    RETURNING member_id AS "memberId"`);
  return [...new Set(rows.map((r) => r.memberId))];
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
  return db.rows<PeerRow>(sql`
    SELECT mb.pubkey, mb.display_name AS "displayName", p.session_id AS "sessionId", p.status,
           p.status_source AS "statusSource", ${isoTime("p.connected_at")} AS "connectedAt"
    FROM presences p JOIN members mb ON mb.id = p.member_id
    WHERE p.mesh_id = ${meshId} AND p.disconnected_at IS NULL AND mb.revoked_at IS NULL
    ORDER BY mb.display_name, mb.pubkey, p.connected_at`);
}

export interface HookMatch {
  sessionId?: string | undefined;
  pid?: number | undefined;
  cwd: string;
}

/** Contract order: by session id, else by pid and cwd, else the newest with that cwd. */
export async function findPresenceForHook(db: Executor, memberId: string, match: HookMatch): Promise<string | null> {
  const rows = await db.rows<{ id: string }>(sql`
    SELECT id FROM presences
    WHERE member_id = ${memberId} AND disconnected_at IS NULL
      AND (session_id = ${match.sessionId ?? null} OR cwd = ${match.cwd})
    ORDER BY (session_id = ${match.sessionId ?? null}) IS TRUE DESC,
             (pid = ${match.pid ?? null} AND cwd = ${match.cwd}) IS TRUE DESC,
             connected_at DESC
    LIMIT 1`);
  return rows[0]?.id ?? null;
}

export interface EndedPresence {
  presenceId: string;
  reason: "replaced" | "revoked";
}

/**
 * Of these live sockets' presences, those whose member was revoked or whose
 * session another presence took over: their close may have travelled by a
 * wake-up that was missed. A presence ended without a successor (its instance
 * was reaped) is not listed; the instance's lease check handles that.
 */
export async function endedPresences(db: Executor, presenceIds: string[]): Promise<EndedPresence[]> {
  if (presenceIds.length === 0) return [];
  return db.rows<EndedPresence>(sql`
    SELECT p.id AS "presenceId", CASE WHEN m.revoked_at IS NOT NULL THEN 'revoked' ELSE 'replaced' END AS reason
    FROM presences p JOIN members m ON m.id = p.member_id
    WHERE p.id = ANY (ARRAY(SELECT jsonb_array_elements_text(${jsonParam(presenceIds)})::uuid))
      AND (m.revoked_at IS NOT NULL OR EXISTS (
        SELECT 1 FROM presences q
        WHERE q.member_id = p.member_id AND q.session_id = p.session_id
          AND q.disconnected_at IS NULL AND q.id <> p.id))`);
}
