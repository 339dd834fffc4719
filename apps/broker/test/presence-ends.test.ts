// Ends of presences against a real database. An end asked for again while
// it is being written (a catch-up run over ends the database did not take,
// while an earlier run's are still in flight) is written once. And the
// statements that lock more than one presence row (a batch of ends, the
// status TTL sweep, a revocation, a hello replacing sessions) take them in
// one order, so none of them deadlocks with another: rows locked in another
// order (a walk of an index by member or session, or of the table) had one
// of two aborted as a deadlock after deadlock_timeout.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { backendKind, waitUntil } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { createLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { LocalPresences } from "../src/services/local-presences.ts";
import { PresenceEvents } from "../src/services/presence-events.ts";
import { PresenceLifecycle } from "../src/services/presence-lifecycle.ts";
import { QueuedWork } from "../src/services/queued-work.ts";
import { TokenExpiry } from "../src/services/token-expiry.ts";
import { revokeMember } from "../src/store/directory.ts";
import { disconnectPresences, endSessions } from "../src/store/presences.ts";
import { expireWorkingStatus } from "../src/store/status.ts";
import { meshWithMember, useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();

/** A live presence of the member, working for an hour, with this id and session. */
async function insertPresence(meshId: string, memberId: string, id: string, sessionId: string = id): Promise<void> {
  await scratch.db.rows(sql`
    INSERT INTO presences (id, mesh_id, member_id, instance_id, session_id, display_name, status, status_source, status_updated_at)
    VALUES (${id}::uuid, ${meshId}::uuid, ${memberId}::uuid, 'ends-test', ${sessionId}, 'n', 'working', 'hook', now() - interval '1 hour')`);
}

test("an end asked for again while it is being written is written once", async () => {
  const log = createLogger("silent", {});
  const bus = new InstanceBus(scratch.db, log);
  const events = new PresenceEvents(scratch.db, bus, "ends-test", createMetrics(), log);
  const pushes = { presenceEnding: <T>(_: unknown, work: () => Promise<T>) => work() };
  const lifecycle = new PresenceLifecycle(scratch.db, new LocalPresences(), new QueuedWork(), bus, log, "ends-test", events, new TokenExpiry(Date.now), pushes);
  const { meshId, memberId } = await meshWithMember(scratch.db, "ends-twice");
  const presenceId = crypto.randomUUID();
  await insertPresence(meshId, memberId, presenceId);

  let framesRead = () => {};
  const first = lifecycle.disconnect({ presenceId, memberId, meshId }, "closed 1006", new Promise<void>((resolve) => (framesRead = resolve)));
  const again = lifecycle.disconnect({ presenceId, memberId, meshId }, "closed 1006");
  framesRead();
  await Promise.all([first, again]);

  const [row] = await scratch.db.rows<{ ends: number; live: boolean }>(sql`
    SELECT (SELECT count(*)::int FROM audit_log WHERE event = 'disconnect' AND meta->>'presenceId' = ${presenceId}) AS ends,
           disconnected_at IS NULL AS live
    FROM presences WHERE id = ${presenceId}::uuid`);
  expect(row).toEqual({ ends: 1, live: false });
});

// Presence ids in the order of the rows' ids; inserted in the reverse order,
// with session ids in the reverse order too, so an order by place in the
// table or in any index of the member's presences is not theirs. Each of the
// three statements locking them in another order deadlocked with the others.
const IDS = ["10000000", "20000000", "30000000"].map((head) => `${head}-0000-4000-8000-000000000000`);
/** The row a third session holds: second in id order. */
const HELD = IDS[1]!;

type Rival = (setup: { meshId: string; memberId: string }) => Promise<unknown>;

const rivals: Record<string, Rival> = {
  "status TTL sweep": () => expireWorkingStatus(scratch.db, 60),
  revocation: ({ meshId, memberId }) => scratch.db.transaction((tx) => revokeMember(tx, meshId, memberId)),
  "hello replacing the sessions": ({ memberId }) =>
    scratch.db.transaction((tx) => endSessions(tx, IDS.map((_, i) => ({ memberId, sessionId: `session-${i + 1}` })))),
};

describe.skipIf(backendKind !== "postgres")("one lock order for presence rows", () => {
  let other: postgres.Sql;
  beforeAll(() => {
    other = postgres(scratch.backend.databaseUrl!, { max: 1, onnotice: () => {} });
  });
  afterAll(() => other?.end());

  // Asked on the broker's pool: the other session's one connection holds the lock.
  const waiting = async () =>
    (await scratch.db.rows<{ n: number }>(sql`
      SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`))[0]!.n;

  test.each(Object.keys(rivals))("a batch of ends and a %s do not deadlock", async (name) => {
    await other`DELETE FROM presences WHERE id = ANY (${IDS}::uuid[])`;
    const { meshId, memberId } = await meshWithMember(scratch.db, `lock-order-${name.replaceAll(" ", "-")}`);
    for (const [i, id] of [...IDS.entries()].reverse()) await insertPresence(meshId, memberId, id, `session-${IDS.length - i}`);

    const reserved = await other.reserve();
    await reserved`BEGIN`;
    await reserved`SELECT 1 FROM presences WHERE id = ${HELD} FOR UPDATE`;
    const ends = scratch.db.transaction((tx) => disconnectPresences(tx, IDS));
    await waitUntil(async () => (await waiting()) === 1 || undefined, 10_000, "the ends to wait for the held row");
    let rivalDone = false;
    const rival = rivals[name]!({ meshId, memberId }).finally(() => (rivalDone = true));
    // The rival waits too, or (skipping rows locked) is done without waiting.
    await waitUntil(async () => rivalDone || (await waiting()) === 2 || undefined, 10_000, `the ${name} to wait or finish`);
    await reserved`COMMIT`;
    reserved.release();

    // Both end without an error: a deadlock aborts one with 40P01.
    const outcomes = await Promise.allSettled([ends, rival]);
    expect(outcomes.map((o) => (o.status === "rejected" ? String(o.reason) : "fulfilled"))).toEqual(["fulfilled", "fulfilled"]);
    const live = await other<Array<{ n: number }>>`SELECT count(*)::int AS n FROM presences WHERE id = ANY (${IDS}::uuid[]) AND disconnected_at IS NULL`;
    expect(live[0]!.n).toBe(0);
  });
});
