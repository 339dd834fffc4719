// An instance frozen (SIGSTOP, a paused VM or container) in the middle of a
// transaction keeps the row locks it took until it wakes: the other instances
// must not wait on them for as long as it sleeps. Here it freezes holding its
// mesh's row lock, as a hello's transaction does, and a hello to that mesh on
// the other instance must still be admitted, and the frozen instance's
// presence reaped, within bounded time; awake, it serves again. Likewise an
// instance frozen as it starts, holding the migration lock, does not keep
// the next instance from starting.
import { describe, expect, test } from "bun:test";
import { MIGRATION_LOCK_KEY } from "@switchboard/db";
import {
  backendKind,
  readLog,
  setupMesh,
  spawnRaw,
  TestBroker,
  TestPeer,
  waitUntil,
  type SetupMember,
} from "@switchboard/testkit";
import postgres from "postgres";
import { usePairWithDatabase } from "./support/pair-database.ts";

const INSTANCE_LEASE_SECONDS = 5;

describe.skipIf(backendKind !== "postgres")("an instance frozen inside a transaction (needs DATABASE_URL)", () => {
  const pair = usePairWithDatabase({ INSTANCE_LEASE_SECONDS: String(INSTANCE_LEASE_SECONDS) }, 2);
  const { peers } = pair;

  test("holding its mesh's row lock: a hello on the other instance is admitted, its presences are reaped", async () => {
    const { mesh, members } = await setupMesh(pair.a.admin, { members: ["frozen", "stuck", "later", "watcher"] });
    const [frozenM, stuckM, laterM, watcherM] = members as [SetupMember, SetupMember, SetupMember, SetupMember];
    const watcher = await TestPeer.connect(pair.a.wsUrl, { identity: watcherM.identity, meshId: mesh.id });
    peers.push(watcher, await TestPeer.connect(pair.b.wsUrl, { identity: frozenM.identity, meshId: mesh.id }));

    // The test holds the mesh's lock, so B's next hello waits for it inside its transaction.
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked = () => {};
    const lockTaken = new Promise<void>((resolve) => (locked = resolve));
    const held = pair.sql.begin(async (tx) => {
      await tx`SELECT id FROM meshes WHERE id = ${mesh.id} FOR NO KEY UPDATE`;
      locked();
      await released;
    });
    await lockTaken;
    const stuck = TestPeer.connect(pair.b.wsUrl, { identity: stuckM.identity, meshId: mesh.id }).then(
      (peer) => peers.push(peer),
      () => {},
    );
    const helloWaits = async () =>
      (await pair.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE wait_event_type = 'Lock' AND query ILIKE '%FROM meshes%FOR NO KEY UPDATE%' AND pid <> pg_backend_pid()`)[0]!.n > 0;
    await waitUntil(helloWaits, 10_000, "B's hello waiting for the mesh's lock");

    // B freezes; its backend is granted the lock and then waits for B, holding it.
    process.kill(pair.b.process.pid, "SIGSTOP");
    try {
      release();
      await held;
      const sessions = async () => {
        const reply = await watcher.request({ type: "list_peers" });
        return (reply.peers as Array<{ presences: Array<{ sessionId: string }> }>).flatMap((p) => p.presences.map((s) => s.sessionId));
      };
      const later = await TestPeer.connect(pair.a.wsUrl, { identity: laterM.identity, meshId: mesh.id, timeoutMs: 30_000 });
      peers.push(later);
      expect(later.isOpen).toBe(true);
      // B's presences are taken for gone while it sleeps.
      await waitUntil(async () => (await sessions()).length === 2, 30_000, "B's presences reaped");
      expect((await sessions()).sort()).toEqual([later.sessionId, watcher.sessionId].sort());
    } finally {
      process.kill(pair.b.process.pid, "SIGCONT");
      release();
      await held.catch(() => {});
      await stuck;
    }
    // Awake, B finds its session ended by the server, and admits hellos again.
    const back = async () => {
      const peer = await TestPeer.connect(pair.b.wsUrl, { identity: stuckM.identity, meshId: mesh.id }).catch(() => null);
      if (peer) peers.push(peer);
      return peer !== null;
    };
    await waitUntil(back, 30_000, "a hello admitted by B once it wakes");
  }, 90_000);

  test("holding the migration lock as it starts: another instance still starts and serves", async () => {
    const backend = pair.a.backend;
    const holder = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
    const starting = spawnRaw(backend.env);
    const { lines, done: reading } = readLog(starting.stderr);
    let next: TestBroker | undefined;
    try {
      // The starting instance waits for the lock inside its migration transaction, then freezes.
      await holder`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
      await waitUntil(() => lines.find((l) => l.msg === "db migrations wait for the migration lock"), 30_000, "the wait logged");
      process.kill(starting.pid, "SIGSTOP");
      await holder`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
      next = await TestBroker.start({}, { backend });
      const ready = async () => (await fetch(`${next!.url}/health/ready`)).status === 200;
      await waitUntil(ready, 30_000, "the next instance ready");
      const { mesh, members } = await setupMesh(next.admin, { members: ["one"] });
      peers.push(await TestPeer.connect(next.wsUrl, { identity: members[0]!.identity, meshId: mesh.id }));
    } finally {
      process.kill(starting.pid, "SIGCONT");
      starting.kill("SIGKILL");
      await starting.exited;
      await reading;
      await holder.end();
      await next?.dispose();
    }
  }, 120_000);
});
