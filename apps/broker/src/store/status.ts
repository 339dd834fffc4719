// The SQL of presence status: reading and writing it under a row lock, the
// TTL flip, finding the presence a hook signal is about, and hook signals
// kept for presences that have not connected yet. The rules that decide
// what to write live in services/status/rules.ts.
import type { Executor } from "@switchboard/db";
import type { Status, StatusSource } from "@switchboard/protocol";
import { sql, type SQL } from "drizzle-orm";
import { ageMs, unique } from "./sql.ts";

export interface LockedStatus {
  memberId: string;
  status: Status;
  statusSource: StatusSource;
  /** Milliseconds since the status was last set, by the database's clock. */
  ageMs: number;
}

/** Null when the presence is not live. Held until the transaction ends. */
export async function lockPresenceStatus(tx: Executor, presenceId: string): Promise<LockedStatus | null> {
  const rows = await tx.rows<LockedStatus>(sql`
    SELECT member_id AS "memberId", status, status_source AS "statusSource",
           ${ageMs("status_updated_at")} AS "ageMs"
    FROM presences WHERE id = ${presenceId} AND disconnected_at IS NULL
    FOR UPDATE`);
  return rows[0] ?? null;
}

export async function writePresenceStatus(tx: Executor, presenceId: string, status: Status, source: StatusSource) {
  await tx.rows(sql`
    UPDATE presences SET status = ${status}, status_source = ${source}, status_updated_at = now()
    WHERE id = ${presenceId}`);
}

/**
 * The TTL rule: live presences in working for ttlSeconds become idle (source
 * jsonl). Returns them and their members. It reads every live presence;
 * `member_id IS NOT NULL` (true of every row) lets it walk them through the
 * live presences' index by member (schema.ts), rather than every presence.
 * The rows are locked in the order of their ids, as a batch of presence ends
 * takes them, and a row locked already is left to the next sweep: either
 * way the two cannot deadlock.
 */
export async function expireWorkingStatus(db: Executor, ttlSeconds: number): Promise<{ memberIds: string[]; presenceIds: string[] }> {
  const rows = await db.rows<{ memberId: string; presenceId: string }>(sql`
    UPDATE presences SET status = 'idle', status_source = 'jsonl', status_updated_at = now()
    WHERE id = ANY (ARRAY(
      SELECT id FROM presences
      WHERE disconnected_at IS NULL AND member_id IS NOT NULL AND status = 'working'
        AND status_updated_at < now() - make_interval(secs => ${ttlSeconds})
      ORDER BY id FOR UPDATE SKIP LOCKED))
    RETURNING member_id AS "memberId", id::text AS "presenceId"`);
  return { memberIds: unique(rows.map((r) => r.memberId)), presenceIds: rows.map((r) => r.presenceId) };
}

/** What a hook signal says about the session it comes from. */
export interface SignalOrigin {
  sessionId: string | null;
  pid: number | null;
  cwd: string;
}

/**
 * Among the member's live presences: by session id, else by pid and cwd, else
 * the newest with that cwd, else the one with that pid. The last is a hook
 * fired in a subdirectory: Claude Code's pid, which its MCP server's hello
 * names too, with a cwd the model has moved to.
 */
export async function findPresenceForSignal(db: Executor, memberId: string, origin: SignalOrigin): Promise<string | null> {
  const rows = await db.rows<{ id: string }>(sql`
    SELECT id FROM presences
    WHERE member_id = ${memberId} AND disconnected_at IS NULL
      AND (session_id = ${origin.sessionId} OR cwd = ${origin.cwd} OR pid = ${origin.pid})
    ORDER BY (session_id = ${origin.sessionId}) IS TRUE DESC,
             (pid = ${origin.pid} AND cwd = ${origin.cwd}) IS TRUE DESC,
             (cwd = ${origin.cwd}) IS TRUE DESC,
             connected_at DESC
    LIMIT 1`);
  return rows[0]?.id ?? null;
}

/**
 * The live presence a kept signal is about, by the rule a connecting
 * presence takes it with (pendingSignalMatches): looked at again for a hello
 * that ran beside the signal and did not see it. Not by the hook's own
 * lookup: a presence that only shares the cwd of a signal that names a pid
 * is another session in the same directory.
 */
export async function findPresenceForKeptSignal(db: Executor, pendingId: number): Promise<string | null> {
  const rows = await db.rows<{ id: string }>(sql`
    SELECT p.id FROM pending_hook_statuses ph
    JOIN presences p ON p.member_id = ph.member_id AND p.disconnected_at IS NULL
      AND ${pendingSignalMatches("ph", { sessionId: sql`p.session_id`, pid: sql`p.pid`, cwd: sql`p.cwd` })}
    WHERE ph.id = ${pendingId}
    ORDER BY (p.session_id = ph.session_id) IS TRUE DESC, (p.pid = ph.pid) IS TRUE DESC, p.connected_at DESC
    LIMIT 1`);
  return rows[0]?.id ?? null;
}

export async function keepPendingSignal(
  db: Executor,
  memberId: string,
  origin: SignalOrigin,
  status: "idle" | "working",
  keepSeconds: number,
): Promise<number> {
  const rows = await db.rows<{ id: number }>(sql`
    INSERT INTO pending_hook_statuses (member_id, session_id, pid, cwd, status, expires_at)
    VALUES (${memberId}, ${origin.sessionId}, ${origin.pid}, ${origin.cwd}, ${status},
            now() + make_interval(secs => ${keepSeconds}))
    RETURNING id::float8 AS id`);
  return rows[0]!.id;
}

/**
 * Locks a kept signal, with its age; null when a connecting presence took it
 * first or it expired. Locked before its presence, as a hello takes it.
 */
export async function lockPendingSignal(tx: Executor, id: number): Promise<{ ageMs: number } | null> {
  const rows = await tx.rows<{ ageMs: number }>(sql`
    SELECT ${ageMs("created_at")} AS "ageMs"
    FROM pending_hook_statuses WHERE id = ${id} AND expires_at > now()
    FOR UPDATE`);
  return rows[0] ?? null;
}

export async function dropPendingSignal(tx: Executor, id: number): Promise<void> {
  await tx.rows(sql`DELETE FROM pending_hook_statuses WHERE id = ${id}`);
}

/**
 * Whether the pending signal `ph` is about a connecting presence: the same
 * session, or the same cwd (when the signal had no pid), or the same pid;
 * of several, the hello takes the newest. The pid match holds even when the
 * signal names a session: a
 * hook pipes Claude Code's session_id, which a peer that only knows its
 * parent's pid and cwd does not have; a pid alone is a hook fired in a
 * subdirectory. (Used by the hello admission in store/hello.ts, which takes
 * the matching signals.)
 */
export function pendingSignalMatches(ph: string, presence: { sessionId: SQL; pid: SQL; cwd: SQL }): SQL {
  const col = (name: string) => sql.raw(`${ph}.${name}`);
  return sql`(${col("session_id")} = ${presence.sessionId}
    OR (${col("cwd")} = ${presence.cwd} AND ${col("pid")} IS NULL)
    OR ${col("pid")} = ${presence.pid})`;
}
