// A socket that closed by itself just before the stop: its presence's end is
// still being written (here held on a row lock) when the stop closes the
// pool. The stop waits for it as one of its steps and, past its time, says it
// gave up on it, as on any step; the end cut off by the pool's close was
// logged as an error (`disconnect failed`), one per such socket.
import { afterEach, describe, expect, test } from "bun:test";
import { backendKind, setupMesh, TestBroker, TestPeer, waitUntil, type SetupMember } from "@switchboard/testkit";
import postgres from "postgres";

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.dispose();
  broker = undefined;
});

describe.skipIf(backendKind !== "postgres")("a presence end under way as the instance stops (needs DATABASE_URL)", () => {
  test("the stop waits for it, and gives up on it as a step it names, with no error logged", async () => {
    broker = await TestBroker.start();
    const { mesh, members } = await setupMesh(broker.admin, { members: ["ada"] });
    const ada = members[0] as SetupMember;
    const peer = await TestPeer.connect(broker.wsUrl, { identity: ada.identity, meshId: mesh.id });
    const db = postgres(broker.backend.databaseUrl!, { max: 2, onnotice: () => {} });
    const holder = await db.reserve();
    try {
      // The presence row locked, so its end waits on it, until after the broker has exited.
      await holder`BEGIN`;
      const locked = await holder`SELECT id FROM presences WHERE member_id = ${ada.id} AND disconnected_at IS NULL FOR UPDATE`;
      expect(locked).toHaveLength(1);
      await peer.close();
      await waitUntil(
        async () => (await db`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`).length > 0,
        10_000,
        "the presence's end waiting on the row lock",
      );
      const code = await broker.stop();
      const logs = broker.process.logs;
      expect(code).toBe(0);
      expect(logs.filter((l) => (l.level ?? 0) >= 50).map((l) => l.msg)).toEqual([]);
      const unfinished = logs.filter((l) => l.msg === "shutdown step timed out" || l.msg === "shutdown step failed").map((l) => l.step);
      expect(unfinished).toContain("presence ends");
    } finally {
      await holder`ROLLBACK`.catch(() => {});
      holder.release();
      await db.end();
    }
  });
});
