// Hellos arriving together are admitted together (one transaction per
// batch): each still gets exactly the answer it would alone — a session
// replaced by a later hello of the same session, a full mesh refusing the
// rest, a replacement never refused for capacity.
import { describe, expect, test } from "bun:test";
import { backendKind, PeerError, setupMesh, TestPeer, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import postgres from "postgres";
import { deltas, scrape } from "./support/messaging.ts";

describe("hellos admitted together (MAX_CONNECTIONS_PER_MESH=10)", () => {
  const broker = useTestBroker({ MAX_CONNECTIONS_PER_MESH: "10" });

  test("twelve simultaneous hellos of one session: all admitted, each replacing the one before; one stays", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const member = members[0]!;
    // Distinct timestamps: the same hello twice would be a replay.
    const now = Date.now();
    const peers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId: mesh.id, sessionId: "one", timestamp: now + i }),
      ),
    );
    const live = await broker.admin.peers(mesh.id);
    expect(live.map((p) => p.sessionId)).toEqual(["one"]);
    const survivor = peers.find((p) => p.helloAck?.presenceId === live[0]!.presenceId);
    expect(survivor).toBeDefined();
    const closes = await Promise.all(peers.filter((p) => p !== survivor).map((p) => p.closed));
    expect(closes.map((c) => c.code)).toEqual(Array.from({ length: 11 }, () => 4000));
    await survivor!.close();
  });

  test("one session's hellos naming its mesh by id and by slug share no transaction: none fails, nor do other members' hellos beside them", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 6 });
    const [member, ...others] = members as [SetupMember, ...SetupMember[]];
    const now = Date.now();
    const attempts = await Promise.allSettled([
      ...Array.from({ length: 8 }, (_, i) =>
        TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId: i % 2 === 0 ? mesh.id : mesh.slug, sessionId: "one", timestamp: now + i }),
      ),
      ...others.map((m) => TestPeer.connect(broker.wsUrl, { identity: m.identity, meshId: mesh.id })),
    ]);
    const refused = attempts.flatMap((a) => (a.status === "rejected" ? [String(a.reason)] : []));
    expect(refused).toEqual([]);
    const live = await broker.admin.peers(mesh.id);
    expect(live.filter((p) => p.sessionId === "one")).toHaveLength(1);
    expect(live).toHaveLength(1 + others.length);
    for (const a of attempts) if (a.status === "fulfilled") await a.value.close();
  });

  test("a mesh one short of full: of three new hellos and one replacing a live session, the replacement and one new get in", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 13 });
    const [old, ...rest] = members as [SetupMember, ...SetupMember[]];
    const filling = rest.slice(0, 8);
    const newcomers = rest.slice(8, 11);
    const first = await TestPeer.connect(broker.wsUrl, { identity: old.identity, meshId: mesh.id, sessionId: "keep" });
    const fill = await Promise.all(filling.map((m) => TestPeer.connect(broker.wsUrl, { identity: m.identity, meshId: mesh.id })));
    // 9 of 10 live. Now together: three newcomers and the old member's session again.
    const attempts = await Promise.allSettled([
      ...newcomers.map((m) => TestPeer.connect(broker.wsUrl, { identity: m.identity, meshId: mesh.id })),
      TestPeer.connect(broker.wsUrl, { identity: old.identity, meshId: mesh.id, sessionId: "keep" }),
    ]);
    const replacement = attempts[3]!;
    expect(replacement.status).toBe("fulfilled");
    const admittedNew = attempts.slice(0, 3).filter((a) => a.status === "fulfilled");
    const refusedNew = attempts.slice(0, 3).flatMap((a) => (a.status === "rejected" ? [(a.reason as PeerError).code] : []));
    expect(admittedNew.length).toBe(1);
    expect(refusedNew).toEqual(["capacity", "capacity"]);
    expect((await first.closed).code).toBe(4000);
    expect((await broker.admin.peers(mesh.id)).length).toBe(10);
    for (const a of attempts) if (a.status === "fulfilled") await a.value.close();
    for (const p of fill) await p.close();
  });
});

describe("one member's share of a mesh (MAX_CONNECTIONS_PER_MEMBER=3, MAX_CONNECTIONS_PER_MESH=5)", () => {
  const broker = useTestBroker({ MAX_CONNECTIONS_PER_MEMBER: "3", MAX_CONNECTIONS_PER_MESH: "5" });
  const refusal = (a: PromiseSettledResult<TestPeer>) =>
    a.status === "rejected" ? { code: (a.reason as PeerError).code, message: (a.reason as PeerError).frame?.message } : "admitted";

  test("five hellos of one member and two of another, together: three and two get in; the refused ones take no place in the mesh", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [greedy, other] = members as [SetupMember, SetupMember];
    const attempts = await Promise.allSettled([
      ...Array.from({ length: 5 }, (_, i) => TestPeer.connect(broker.wsUrl, { identity: greedy.identity, meshId: mesh.id, sessionId: `g${i}` })),
      ...Array.from({ length: 2 }, (_, i) => TestPeer.connect(broker.wsUrl, { identity: other.identity, meshId: mesh.id, sessionId: `o${i}` })),
    ]);
    const greedyAnswers = attempts.slice(0, 5).map(refusal);
    expect(greedyAnswers.filter((a) => a === "admitted")).toHaveLength(3);
    expect(greedyAnswers.filter((a) => a !== "admitted")).toEqual([
      { code: "capacity", message: "this member has 3 live connections already" },
      { code: "capacity", message: "this member has 3 live connections already" },
    ]);
    expect(attempts.slice(5).map(refusal)).toEqual(["admitted", "admitted"]);
    const live = await broker.admin.peers(mesh.id);
    expect(live.filter((p) => p.pubkey === greedy.pubkey)).toHaveLength(3);
    expect(live).toHaveLength(5);

    // At its cap, a hello replacing one of its own sessions still gets in; a new session does once one has ended.
    const admitted = attempts.flatMap((a, i) => (a.status === "fulfilled" && i < 5 ? [a.value] : []));
    const kept = live.find((p) => p.pubkey === greedy.pubkey)!.sessionId;
    const replacing = await TestPeer.connect(broker.wsUrl, { identity: greedy.identity, meshId: mesh.id, sessionId: kept });
    await expect(TestPeer.connect(broker.wsUrl, { identity: greedy.identity, meshId: mesh.id, sessionId: "later" })).rejects.toMatchObject({ code: "capacity" });
    const gone = admitted.find((p) => p.helloAck?.presenceId !== live.find((l) => l.sessionId === kept)!.presenceId)!;
    await gone.close();
    await waitUntil(async () => (await broker.admin.peers(mesh.id)).length === 4, 10_000, "the closed session to end");
    const later = await TestPeer.connect(broker.wsUrl, { identity: greedy.identity, meshId: mesh.id, sessionId: "later" });
    expect((await broker.admin.peers(mesh.id)).filter((p) => p.pubkey === greedy.pubkey)).toHaveLength(3);
    for (const p of [...admitted, replacing, later]) await p.close();
    for (const a of attempts.slice(5)) if (a.status === "fulfilled") await a.value.close();
  });
});

// Long enough that on a busy machine the hello is read, and its admission
// seen waiting, well within the timeout; the test then waits past it.
const HELLO_TIMEOUT_MS = 3000;

describe.skipIf(backendKind !== "postgres")(`a hello that came in time, admitted slowly (HELLO_TIMEOUT_MS=${HELLO_TIMEOUT_MS})`, () => {
  const broker = useTestBroker({ HELLO_TIMEOUT_MS: String(HELLO_TIMEOUT_MS) });

  /** Runs `during` while another session holds the mesh's row, which every admission into it waits for. */
  async function withMeshLocked<T>(meshId: string, during: () => Promise<T>): Promise<T> {
    const sql = postgres(broker.backend.databaseUrl!, { max: 1, onnotice: () => {} });
    try {
      const locked = await sql.reserve();
      await locked`BEGIN`;
      await locked`SELECT id FROM meshes WHERE id = ${meshId} FOR UPDATE`;
      try {
        return await during();
      } finally {
        await locked`COMMIT`;
        locked.release();
      }
    } finally {
      await sql.end();
    }
  }

  /** Until a statement of the broker's waits for a lock: the admission, behind the mesh's row. */
  async function admissionWaiting(): Promise<void> {
    const sql = postgres(broker.backend.databaseUrl!, { max: 1, onnotice: () => {} });
    try {
      const waiting = async () =>
        (await sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'`)[0]!.n > 0;
      await waitUntil(waiting, 30_000, "the admission waiting for the mesh");
    } finally {
      await sql.end();
    }
  }

  test("is admitted, not refused as hello_timeout, when its mesh is locked past the timeout", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const connecting = await withMeshLocked(mesh.id, async () => {
      const connecting = TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id, timeoutMs: 30_000 });
      // Past the hello timeout, within its admission's (twice that), with the
      // hello read and its admission waiting for the mesh.
      await admissionWaiting();
      await Bun.sleep(HELLO_TIMEOUT_MS + 500);
      return { peer: connecting };
    });
    const peer = await connecting.peer;
    expect(peer.helloAck?.type).toBe("hello_ack");
    await peer.close();
  });

  test("an admission past its own time (twice the hello timeout) closes the socket as the broker's failure, counted as internal, and admits nothing", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const before = await scrape(broker.url);
    const refused = await withMeshLocked(mesh.id, () =>
      TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id, timeoutMs: 30_000 }).then(
        () => null,
        (error: unknown) => error as PeerError,
      ),
    );
    expect({ code: refused?.code, close: refused?.closeCode }).toEqual({ code: "internal", close: 1011 });
    const internal = "broker_connections_rejected_total{reason=internal}";
    expect(deltas(before, await scrape(broker.url), [internal])).toEqual({ [internal]: 1 });
    // Its admission, under way in the mesh's lock, commits once the lock goes; then its presence is ended at once.
    const sql = postgres(broker.backend.databaseUrl!, { max: 1, onnotice: () => {} });
    try {
      const rows = () => sql<Array<{ live: boolean }>>`SELECT disconnected_at IS NULL AS live FROM presences WHERE member_id = ${members[0]!.id}`;
      await waitUntil(async () => ((await rows()).length > 0 ? true : undefined), 10_000, "the late admission committed");
      await waitUntil(async () => ((await rows()).every((r) => !r.live) ? true : undefined), 10_000, "its presence ended");
    } finally {
      await sql.end();
    }
    expect(await broker.admin.peers(mesh.id)).toEqual([]);
  });
});
