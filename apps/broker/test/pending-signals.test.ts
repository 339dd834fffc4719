// A hook signal kept for a session that had not connected yet goes, when
// several hellos of one batch match it, to the hello of its session before
// one that matches only its pid or its cwd, as a signal is matched to a
// presence already live (store/status.ts).
import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { takePendingSignals, type SignalTaker } from "../src/store/hello.ts";
import { useMeshDatabase } from "./support/scratch-db.ts";

const scratch = useMeshDatabase("pending-signals");

/** Keeps a signal of the mesh's member, as the hook route does when no presence matches it. */
async function kept(signal: { sessionId: string | null; pid: number | null; cwd: string }): Promise<void> {
  await scratch.db.rows(sql`
    INSERT INTO pending_hook_statuses (member_id, session_id, pid, cwd, status, expires_at)
    VALUES (${scratch.memberId}::uuid, ${signal.sessionId}, ${signal.pid}, ${signal.cwd}, 'working', now() + interval '10 seconds')`);
}

const hello = (idx: number, sessionId: string, pid: number | null, cwd: string | null): SignalTaker => ({ idx, memberId: scratch.memberId, sessionId, pid, cwd });

/** Which hellos of the batch took a signal, by idx, with the session the signal named. */
async function takenBy(batch: SignalTaker[]): Promise<Array<[number, string | null]>> {
  const taken = await takePendingSignals(scratch.db, batch);
  return [...taken].map(([idx, signal]) => [idx, signal.sessionId]);
}

describe("a kept hook signal matched by several hellos of one batch", () => {
  test("goes to the hello of its session, not to an earlier one of its pid", async () => {
    await kept({ sessionId: "s1", pid: 4242, cwd: "/w" });
    expect(await takenBy([hello(0, "s2", 4242, "/w"), hello(1, "s1", 4242, "/w")])).toEqual([[1, "s1"]]);
  });

  test("goes to the hello of its session, not to an earlier one in its cwd (a signal without a pid)", async () => {
    await kept({ sessionId: "s3", pid: null, cwd: "/v" });
    expect(await takenBy([hello(0, "s4", 6161, "/v"), hello(1, "s3", 7171, "/elsewhere")])).toEqual([[1, "s3"]]);
  });

  test("of hellos that match it alike, the first takes it, once", async () => {
    await kept({ sessionId: null, pid: null, cwd: "/u" });
    expect(await takenBy([hello(0, "a", 1, "/u"), hello(1, "b", 2, "/u")])).toEqual([[0, null]]);
    expect(await takenBy([hello(0, "a", 1, "/u")])).toEqual([]);
  });
});
