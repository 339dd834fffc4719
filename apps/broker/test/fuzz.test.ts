// Seeded hostile input (a small run; `bun run bench robust` runs 100,000):
// every frame, hello, hook body and admin body is answered by its reply, a
// coded error or a documented close; the broker stays up; no row holds a
// status, state, priority or role outside the protocol.
import { describe, expect, test } from "bun:test";
import { fuzzBroker, setupMesh, useTestBroker } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { connect } from "@switchboard/db";

const SEED = Number(process.env.FUZZ_SEED ?? 20261129);

describe(`fuzzing a running broker (seed ${SEED})`, () => {
  const broker = useTestBroker({
    MAX_MESSAGE_BYTES: "65536",
    // The fuzzer is one member sending everything: its limits must not end the run early.
    CONTROL_RATE_LIMIT_PER_MIN: "1000000",
    MAX_REFUSED_FRAMES_PER_MIN: "1000000",
    HELLO_FAILURES_PER_ADDRESS_PER_MIN: "1000000",
    HOOK_RATE_LIMIT_PER_MIN: "1000000",
    HOOK_RATE_LIMIT_PER_TOKEN_PER_MIN: "1000000",
  });

  test("600 frames, 100 hellos, 150 hook bodies, 150 admin bodies: each answered, the broker up, the rows valid", async () => {
    const { admin, backend } = broker;
    const { mesh, members } = await setupMesh(admin, { members: 2 });
    const [fuzzer, other] = members;
    const report = await fuzzBroker(
      {
        baseUrl: broker.url,
        wsUrl: broker.wsUrl,
        adminToken: broker.adminToken,
        meshId: mesh.id,
        identity: fuzzer!.identity,
        otherPubkey: other!.pubkey,
        hookToken: await admin.createHookToken(mesh.id, fuzzer!.id),
      },
      { seed: SEED, frames: 600, hellos: 100, hooks: 150, adminBodies: 150 },
    );
    expect(report.unanswered).toEqual([]);
    expect(report.answered).toBe(600 + 100 + 150 + 150);
    expect(report.httpStatuses["500"]).toBeUndefined();
    expect((await fetch(`${broker.url}/health`)).status).toBe(200);
    expect(broker.process.logs.filter((l) => (l.level ?? 0) >= 60)).toEqual([]);

    // The schema's own checks would refuse such rows; this reads what is there.
    await broker.stop();
    const db = await connect({ databaseUrl: backend.databaseUrl, dataDir: backend.dataDir ?? "" });
    try {
      const [bad] = await db.rows<{ n: number }>(sql`
        SELECT (SELECT count(*) FROM presences WHERE status NOT IN ('idle', 'working', 'dnd')
                  OR status_source NOT IN ('hook', 'manual', 'jsonl'))
             + (SELECT count(*) FROM deliveries WHERE state NOT IN ('queued', 'leased', 'acked', 'expired')
                  OR priority NOT IN ('now', 'next', 'low'))
             + (SELECT count(*) FROM messages WHERE priority NOT IN ('now', 'next', 'low'))
             + (SELECT count(*) FROM members WHERE role NOT IN ('member', 'observer'))
             + (SELECT count(*) FROM pending_hook_statuses WHERE status NOT IN ('idle', 'working')) AS n`);
      expect(Number(bad?.n)).toBe(0);
    } finally {
      await db.close();
    }
  });
});
