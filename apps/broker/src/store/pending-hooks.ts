// Hook signals that arrived before their presence connected, kept briefly.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

export interface PendingSignal {
  memberId: string;
  sessionId: string | null;
  pid: number | null;
  cwd: string;
  status: "idle" | "working";
}

export async function keepPendingSignal(db: Executor, signal: PendingSignal, keepSeconds: number): Promise<void> {
  await db.rows(sql`
    INSERT INTO pending_hook_statuses (member_id, session_id, pid, cwd, status, expires_at)
    VALUES (${signal.memberId}, ${signal.sessionId}, ${signal.pid}, ${signal.cwd}, ${signal.status},
            now() + make_interval(secs => ${keepSeconds}))`);
}

/** Takes the newest unexpired signal that matches a connecting presence, and drops the ones it supersedes. */
export async function takePendingSignal(
  tx: Executor,
  presence: { memberId: string; sessionId: string; pid: number | null; cwd: string | null },
): Promise<"idle" | "working" | null> {
  // As the live lookup: by session, else by pid and cwd. The pid+cwd match holds
  // even when the signal names a session: a hook pipes Claude Code's session_id,
  // which a peer that only knows its parent's pid and cwd does not have.
  const rows = await tx.rows<{ status: "idle" | "working"; id: number | string }>(sql`
    DELETE FROM pending_hook_statuses
    WHERE member_id = ${presence.memberId} AND expires_at > now()
      AND (session_id = ${presence.sessionId}
           OR (cwd = ${presence.cwd} AND (pid IS NULL OR pid = ${presence.pid})))
    RETURNING status, id`);
  const newest = [...rows].sort((a, b) => Number(b.id) - Number(a.id))[0];
  return newest?.status ?? null;
}
