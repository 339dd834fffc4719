// What admitting hellos reads and writes. A batch of hellos is admitted in
// one transaction (see services/hello.ts), so a storm of connections costs a
// few statements and one commit per batch, not per hello. A hello refused
// for capacity leaves no presence and enrols nothing, but its signature
// stays used (a retry signs anew).
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { ageMs, isoTime, jsonParam, UUID, uuidArray } from "./sql.ts";
import { pendingSignalMatches } from "./status.ts";

export interface HelloRequest {
  idx: number;
  meshRef: string;
  pubkey: string;
  sessionId: string;
  pid: number | null;
  cwd: string | null;
  /** The hello's signed timestamp (ms); null for a JWT hello. */
  timestamp: number | null;
  /** Null for a JWT hello. */
  signature: string | null;
  /** A JWT hello's `mesh` claim: the hello's mesh must be the one it names. Null for a signed hello. */
  claimMesh: string | null;
}

/** A JWT hello whose pubkey is enrolled on first use. */
export interface VouchedPubkey {
  meshRef: string;
  claimMesh: string;
  pubkey: string;
  displayName: string;
  tags: readonly string[];
}

export type HelloVerdict = "ok" | "timestamp_skew" | "unauthorized" | "replayed";

/** A hook signal kept for a presence not connected yet (status.ts keepPendingSignal). */
export interface PendingSignal {
  status: "idle" | "working";
  sessionId: string | null;
  pid: number | null;
  cwd: string | null;
  /** ISO-8601 UTC. */
  expiresAt: string;
  /** Milliseconds since it was kept. */
  ageMs: number;
}

export interface ResolvedHello {
  idx: number;
  verdict: HelloVerdict;
  meshId: string | null;
  memberId: string | null;
  displayName: string | null;
  role: "member" | "observer" | null;
  /** The status of the session's latest presence, live or gone (a reconnect's predecessor); null for a new session. */
  previous: { status: "idle" | "working" | "dnd"; source: "manual" | "hook" | "jsonl"; ageMs: number } | null;
}

/**
 * Enrols the pubkeys of JWT hellos that are not members yet, in the mesh the
 * hello names when the token names the same one. A pubkey already enrolled,
 * revoked or not, is left as it is: a revoked one is refused by resolveHellos.
 * Returns the ids of the members it enrolled.
 */
export async function enrolVouched(tx: Executor, vouched: VouchedPubkey[]): Promise<string[]> {
  if (vouched.length === 0) return [];
  const input = vouched.map((v) => ({ ...v, meshIsUuid: UUID.test(v.meshRef) }));
  const rows = await tx.rows<{ id: string }>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name, tags, role)
    SELECT m.id, q.pubkey, q."displayName", ARRAY(SELECT jsonb_array_elements_text(q.tags)), 'member'
    FROM jsonb_to_recordset(${jsonParam(input)})
      AS q("meshRef" text, "meshIsUuid" boolean, "claimMesh" text, pubkey text, "displayName" text, tags jsonb)
    JOIN LATERAL (
      SELECT id, slug FROM meshes
      WHERE CASE WHEN q."meshIsUuid" THEN id = q."meshRef"::uuid ELSE slug = q."meshRef" END
      LIMIT 1
    ) m ON true
    -- An id in any case names its mesh, as the hello's meshRef does.
    WHERE m.id::text = lower(q."claimMesh") OR m.slug = q."claimMesh"
    ON CONFLICT (mesh_id, pubkey) DO NOTHING
    RETURNING id::text AS id`);
  return rows.map((r) => r.id);
}

/** Takes back enrolments of this transaction's whose hellos were all refused: members nothing else refers to yet. */
export async function unenrol(tx: Executor, memberIds: string[]): Promise<void> {
  if (memberIds.length === 0) return;
  await tx.rows(sql`DELETE FROM members WHERE id = ANY (${uuidArray(memberIds)})`);
}

/**
 * Checks each hello against the database's clock (the one clock all
 * instances share) and the directory, records the signatures of those that
 * pass in the replay guard (kept until their own timestamp plus keepMs, when
 * the clock window refuses them anyway). A JWT hello has no clock window and
 * no replay guard (its token was checked before); it must name the mesh of
 * its token's `mesh` claim.
 */
export async function resolveHellos(
  tx: Executor,
  hellos: HelloRequest[],
  windowMs: number,
  keepMs: number,
): Promise<ResolvedHello[]> {
  if (hellos.length === 0) return [];
  const input = hellos.map((h) => ({ ...h, meshIsUuid: UUID.test(h.meshRef) }));
  return tx.rows<ResolvedHello>(sql`
    WITH q AS (
      SELECT * FROM jsonb_to_recordset(${jsonParam(input)})
        AS q(idx int, "meshRef" text, "meshIsUuid" boolean, pubkey text, "sessionId" text, pid int, cwd text,
             timestamp float8, signature text, "claimMesh" text)
      LIMIT ${hellos.length}
    ),
    found AS (
      SELECT q.*, m.id AS mesh_id, mb.id AS member_id, mb.display_name, mb.role,
             -- A revoked member, or a token for another mesh than the hello's.
             mb.revoked_at IS NOT NULL
               OR (q."claimMesh" IS NOT NULL AND m.id::text <> lower(q."claimMesh") AND m.slug <> q."claimMesh") AS barred,
             q.signature IS NOT NULL AND abs(extract(epoch FROM clock_timestamp()) * 1000 - q.timestamp) > ${windowMs} AS skewed
      FROM q
      LEFT JOIN LATERAL (
        SELECT id, slug FROM meshes
        WHERE CASE WHEN q."meshIsUuid" THEN id = q."meshRef"::uuid ELSE slug = q."meshRef" END
        LIMIT 1
      ) m ON true
      LEFT JOIN members mb ON mb.mesh_id = m.id AND mb.pubkey = q.pubkey
    ),
    recorded AS (
      INSERT INTO hello_replays (signature, expires_at)
      SELECT signature, to_timestamp((timestamp + ${keepMs}) / 1000) FROM found
      WHERE signature IS NOT NULL AND NOT skewed AND member_id IS NOT NULL AND NOT barred
      ON CONFLICT (signature) DO NOTHING
      RETURNING signature
    ),
    admitted AS (
      SELECT f.* FROM found f JOIN recorded r ON r.signature = f.signature
      UNION ALL
      SELECT f.* FROM found f WHERE f.signature IS NULL AND f.member_id IS NOT NULL AND NOT f.barred
    )
    SELECT f.idx,
           CASE WHEN f.skewed THEN 'timestamp_skew'
                WHEN f.member_id IS NULL OR f.barred THEN 'unauthorized'
                WHEN a.idx IS NULL THEN 'replayed'
                ELSE 'ok' END AS verdict,
           f.mesh_id AS "meshId", f.member_id AS "memberId", f.display_name AS "displayName", f.role,
           CASE WHEN prev.status IS NULL THEN NULL
                ELSE jsonb_build_object('status', prev.status, 'source', prev.status_source,
                                       'ageMs', ${ageMs("prev.status_updated_at")}) END AS previous
    FROM found f LEFT JOIN admitted a ON a.idx = f.idx
    -- One probe of (member_id, session_id, connected_at) per admitted hello.
    LEFT JOIN LATERAL (
      SELECT p.status, p.status_source, p.status_updated_at FROM presences p
      WHERE a.idx IS NOT NULL AND p.member_id = f.member_id AND p.session_id = f."sessionId"
      ORDER BY p.connected_at DESC
      LIMIT 1
    ) prev ON true
    ORDER BY f.idx`);
}

/** An admitted hello, as a kept hook signal is matched against it. */
export interface SignalTaker {
  idx: number;
  memberId: string;
  sessionId: string;
  pid: number | null;
  cwd: string | null;
}

/**
 * Takes the hook signals kept for the hellos' sessions (pendingSignalMatches),
 * each by the hello it names best (as findPresenceForKeptSignal ranks):
 * for each hello the newest, by its idx; the others it took are gone
 * too. Run once the hellos' meshes are locked, however long that took: a
 * signal the hook kept meanwhile (it found no presence yet) is committed by
 * then and seen here. One kept after this statement, the hook's own looks
 * again (services/status) find once this transaction has committed.
 */
export async function takePendingSignals(tx: Executor, takers: SignalTaker[]): Promise<Map<number, PendingSignal>> {
  if (takers.length === 0) return new Map();
  const rows = await tx.rows<{ idx: number; signal: PendingSignal }>(sql`
    WITH a AS (
      SELECT * FROM jsonb_to_recordset(${jsonParam(takers)})
        AS a(idx int, "memberId" uuid, "sessionId" text, pid int, cwd text)
      LIMIT ${takers.length}
    ),
    -- Each signal to one hello: its session's, else its pid's, else its cwd's.
    -- A DELETE … USING of several matching hellos would take whichever the
    -- join met first, another session's before the one the signal names.
    chosen AS (
      SELECT DISTINCT ON (ph.id) ph.id, a.idx
      FROM pending_hook_statuses ph JOIN a ON ph.member_id = a."memberId"
      WHERE ph.expires_at > now()
        AND ${pendingSignalMatches("ph", { sessionId: sql`a."sessionId"`, pid: sql`a.pid`, cwd: sql`a.cwd` })}
      ORDER BY ph.id, (ph.session_id = a."sessionId") IS TRUE DESC, (ph.pid = a.pid) IS TRUE DESC, a.idx
    ),
    taken AS (
      DELETE FROM pending_hook_statuses ph
      USING chosen
      WHERE ph.id = chosen.id
      RETURNING chosen.idx, ph.id,
                jsonb_build_object('status', ph.status, 'sessionId', ph.session_id, 'pid', ph.pid, 'cwd', ph.cwd,
                                   'expiresAt', ${isoTime("ph.expires_at")},
                                   'ageMs', ${ageMs("ph.created_at")}) AS signal
    )
    SELECT DISTINCT ON (idx) idx, signal FROM taken ORDER BY idx, id DESC`);
  return new Map(rows.map((r) => [r.idx, r.signal]));
}

/** Puts back a signal a hello took but was then refused (capacity): it waits for the next try, until it would have expired. */
export async function restorePendingSignal(tx: Executor, memberId: string, signal: PendingSignal): Promise<void> {
  await tx.rows(sql`
    INSERT INTO pending_hook_statuses (member_id, session_id, pid, cwd, status, created_at, expires_at)
    VALUES (${memberId}::uuid, ${signal.sessionId}, ${signal.pid}, ${signal.cwd}, ${signal.status},
            now() - make_interval(secs => ${signal.ageMs / 1000}), ${signal.expiresAt}::timestamptz)`);
}

/**
 * Of these members, those revoked. Read once the hellos' meshes are locked: a
 * revocation locks its mesh too (directory.ts revokeMember), so one that
 * committed while the hellos waited is seen here.
 */
export async function revokedAmong(tx: Executor, memberIds: string[]): Promise<Set<string>> {
  if (memberIds.length === 0) return new Set();
  const rows = await tx.rows<{ id: string }>(sql`
    SELECT id::text AS id FROM members WHERE id = ANY (${uuidArray(memberIds)}) AND revoked_at IS NOT NULL`);
  return new Set(rows.map((r) => r.id));
}

/** Serialises hellos into the same meshes, so capacity counts are exact across instances. Locked in id order. */
export async function lockMeshes(tx: Executor, meshIds: string[]): Promise<void> {
  if (meshIds.length === 0) return;
  await tx.rows(sql`
    SELECT id FROM meshes WHERE id = ANY (${uuidArray(meshIds)}) ORDER BY id FOR NO KEY UPDATE`);
}
