// Requeue (store/queue/requeue.ts), against a real database: each scope
// returns exactly its leases to the queue, and — planned as the
// pool plans it, with the acknowledged deliveries of an hour in the table —
// reaches each of them by one probe. The leases were joined back to the table
// on their holder's index, which read all of a holder's leases again for
// each one: a presence with a full push window cost 130,000 rows.
import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { requeue } from "../src/store/queue/requeue.ts";
import { planOf, rowsRemoved } from "./support/plans.ts";
import { settledDeliveries, useMeshDatabase } from "./support/scratch-db.ts";

const t = useMeshDatabase("requeue");

async function presence(session: string): Promise<string> {
  const [p] = await t.db.rows<{ id: string }>(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    VALUES (${t.meshId}::uuid, ${t.memberId}::uuid, 'requeue', ${session}, 'n') RETURNING id`);
  return p!.id;
}

/** `count` deliveries leased to `holder` (attempt 1), their leases ending `endsIn` from now; their message ids. */
async function leases(holder: string, count: number, endsIn = "1 minute"): Promise<string[]> {
  const rows = await t.db.rows<{ id: string }>(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${t.meshId}::uuid, ${t.memberId}::uuid, 'k', 'now', 'n', 'c', now() + interval '1 day' FROM generate_series(1, ${count})
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, lease_presence_id, lease_expires_at,
                            attempt, delivered_at)
    SELECT id, ${t.memberId}::uuid, 'now', now() + interval '1 day', 'leased', ${holder}::uuid, now() + ${endsIn}::interval, 1, now()
    FROM m RETURNING message_id AS id`);
  return rows.map((r) => r.id);
}

const stateOf = async (messageIds: string[]) =>
  t.db.rows<{ state: string; holder: string | null; attempt: number }>(sql`
    SELECT state, lease_presence_id::text AS holder, attempt FROM deliveries
    WHERE message_id = ANY (ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(messageIds)}::jsonb)::uuid))
    ORDER BY id`);

describe("requeue", () => {
  test("each scope returns its own leases to the queue and no other", async () => {
    const [p, q] = [await presence("p"), await presence("q")];
    const ofP = await leases(p, 3);
    const ofQ = await leases(q, 2);
    expect(await requeue(t.db, { presences: [p] })).toEqual([t.memberId]);
    expect((await stateOf(ofP)).map((d) => d.state)).toEqual(["queued", "queued", "queued"]);
    expect((await stateOf(ofQ)).map((d) => d.state)).toEqual(["leased", "leased"]);

    // A push named with a holder that does not hold it stays; the one named right goes back, its claim undone.
    await requeue(t.db, { pushes: [{ messageId: ofQ[0]!, memberId: t.memberId, presenceId: p }] });
    await requeue(t.db, { pushes: [{ messageId: ofQ[1]!, memberId: t.memberId, presenceId: q }] });
    expect(await stateOf(ofQ)).toEqual([
      { state: "leased", holder: q, attempt: 1 },
      { state: "queued", holder: null, attempt: 0 },
    ]);

    const ran = await leases(q, 2, "-1 second");
    const running = await leases(q, 1);
    await requeue(t.db, { expiredLeases: { limit: 100 } });
    expect((await stateOf(ran)).map((d) => d.state)).toEqual(["queued", "queued"]);
    expect((await stateOf(running)).map((d) => d.state)).toEqual(["leased"]);

    // Only the named presences' leases that ran out.
    const [r, s] = [await presence("r"), await presence("s")];
    const ranOfR = await leases(r, 2, "-1 second");
    const runningOfR = await leases(r, 1);
    const ranOfS = await leases(s, 1, "-1 second");
    expect(await requeue(t.db, { expiredOf: [r] })).toEqual([t.memberId]);
    expect((await stateOf(ranOfR)).map((d) => d.state)).toEqual(["queued", "queued"]);
    expect((await stateOf(runningOfR)).map((d) => d.state)).toEqual(["leased"]);
    expect((await stateOf(ranOfS)).map((d) => d.state)).toEqual(["leased"]);
    // Nothing that ran out is left leased for the next test's plans to read past.
    await requeue(t.db, { expiredLeases: { limit: 100 } });
    expect((await stateOf(ranOfS)).map((d) => d.state)).toEqual(["queued"]);
  });

  test("each scope reaches its leases by one probe each, not by rereading its holder's (generic plan, run)", async () => {
    await settledDeliveries(t.db, t, 30_000);
    const full = await presence("full");
    const window = await leases(full, 500, "-1 second");
    await t.db.rows(sql`ANALYZE`);
    const on = t.backend.databaseUrl ?? t.db;
    const pushes = window.slice(0, 200).map((messageId) => ({ messageId, memberId: t.memberId, presenceId: full }));
    for (const scope of [{ presences: [full] }, { pushes }, { expiredLeases: { limit: 10_000 } }, { expiredOf: [full] }]) {
      const plan = await planOf(on, (recorder) => requeue(recorder, scope), { generic: true, analyze: true });
      const reread = rowsRemoved(plan);
      expect({ scope: Object.keys(scope)[0], reread }).toEqual({ scope: Object.keys(scope)[0], reread: 0 });
      expect(plan).not.toMatch(/Seq Scan on deliveries/);
    }
  });

  test("a presence's lapsed leases are found by their holder, not among every lease that ran out (a backlog the statistics do not know of)", async () => {
    // Many presences, as an instance serves: each holds a few of the table's leases.
    const lapsing = await presence("lapsing");
    await leases(lapsing, 3, "-1 second");
    for (let i = 0; i < 100; i++) await leases(await presence(`backlog-${i}`), 80);
    await t.db.rows(sql`ANALYZE`);
    // Ran out since the statistics were taken: an outage's backlog, say.
    await t.db.rows(sql`UPDATE deliveries SET lease_expires_at = now() - interval '1 second' WHERE state = 'leased'`);
    const plan = await planOf(t.backend.databaseUrl ?? t.db, (recorder) => requeue(recorder, { expiredOf: [lapsing] }), { generic: true, analyze: true });
    const reread = rowsRemoved(plan);
    expect(reread).toBe(0);
    expect(plan).not.toMatch(/deliveries_leased_idx|Seq Scan on deliveries|Hash/);
    expect(plan).toMatch(/^Update on deliveries d .* rows=3(?:\.00)? loops=1\)$/m);
    await requeue(t.db, { expiredLeases: { limit: 10_000 } });
  });
});
