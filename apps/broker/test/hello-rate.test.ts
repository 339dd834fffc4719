// A member's admitted hellos are limited per minute (HELLO_RATE_LIMIT_PER_MIN):
// a key that reconnects in a loop, each hello replacing its own session,
// would otherwise write a presence and its audit rows per hello, and send
// every other member's presence subscription a `left` and a `joined` each
// time, without end.
import { afterEach, describe, expect, test } from "bun:test";
import {
  buildHello,
  PeerError,
  PeerPool,
  RawUpgradeRefused,
  RawWebSocket,
  setupMesh,
  TestPeer,
  useTestBroker,
  type SetupMember,
  type TestIdentity,
} from "@switchboard/testkit";

const pool = new PeerPool();
afterEach(() => pool.closeAll());

describe("hellos admitted per member (HELLO_RATE_LIMIT_PER_MIN=4)", () => {
  const broker = useTestBroker({ HELLO_RATE_LIMIT_PER_MIN: "4" });

  test("a session replaced in a loop: the fifth hello in a minute is refused capacity and replaces nothing; other members are not held back", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 3 });
    const [looper, watcher, newcomer] = members as [SetupMember, SetupMember, SetupMember];
    const watching = await pool.connect(broker.wsUrl, watcher, mesh.id);
    expect(await watching.request({ type: "subscribe", events: ["presence"] })).toMatchObject({ type: "ack" });

    const admitted: TestPeer[] = [];
    for (let i = 0; i < 4; i++) {
      admitted.push(await TestPeer.connect(broker.wsUrl, { identity: looper.identity, meshId: mesh.id, sessionId: "loop" }));
    }
    const last = admitted[3]!;
    const refused = await TestPeer.connect(broker.wsUrl, { identity: looper.identity, meshId: mesh.id, sessionId: "loop" }).then(
      (peer) => {
        admitted.push(peer);
        return peer;
      },
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(PeerError);
    expect(refused).toMatchObject({ code: "capacity", closeCode: 1008, closeReason: "capacity" });
    expect(String((refused as PeerError).frame?.message)).toContain("4 hellos in a minute");

    // The session's presence is still the last one admitted, its socket open.
    expect(await last.request({ type: "ping" })).toMatchObject({ type: "pong" });
    const live = await broker.admin.peers(mesh.id);
    expect(live.filter((p) => p.pubkey === looper.pubkey).map((p) => p.presenceId)).toEqual([String(last.helloAck?.presenceId)]);

    // Another member's hellos count apart; its joined event, fanned out after
    // the refusal, shows the subscriber was told no `left` of the last one.
    const other = await pool.connect(broker.wsUrl, newcomer, mesh.id);
    await watching.nextFrame((f) => f.type === "presence" && f.event === "joined" && f.presenceId === other.helloAck?.presenceId);
    const lastLeft = watching.frames.filter((f) => f.type === "presence" && f.event === "left" && f.presenceId === last.helloAck?.presenceId);
    expect(lastLeft).toEqual([]);
    for (const peer of admitted) await peer.close();
  });

  test("hellos of one member sent together, each a session of its own: four admitted, the rest refused capacity", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const member = members[0]!;
    const attempts = await Promise.allSettled(
      Array.from({ length: 7 }, (_, i) => TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId: mesh.id, sessionId: `s${i}` })),
    );
    const refusals = attempts.flatMap((a) => (a.status === "rejected" ? [(a.reason as PeerError).code] : []));
    expect(refusals).toEqual(["capacity", "capacity", "capacity"]);
    expect(await broker.admin.peers(mesh.id)).toHaveLength(4);
    for (const a of attempts) if (a.status === "fulfilled") await a.value.close();
  });
});

describe("hellos refused for what their member did count against their address; a full mesh does not (HELLO_FAILURES_PER_ADDRESS_PER_MIN=2)", () => {
  const broker = useTestBroker({
    HELLO_FAILURES_PER_ADDRESS_PER_MIN: "2",
    MAX_CONNECTIONS_PER_MEMBER: "1",
    MAX_CONNECTIONS_PER_MESH: "2",
    TRUSTED_PROXIES: "127.0.0.1,::1",
  });

  /** A hello from `address` on a socket of its own: its error code, or "admitted", or the upgrade's refusal status. */
  async function helloFrom(address: string, identity: TestIdentity, meshId: string): Promise<string | number> {
    let ws: RawWebSocket;
    try {
      ws = await RawWebSocket.open(broker.wsUrl, { "x-forwarded-for": address });
    } catch (error) {
      if (error instanceof RawUpgradeRefused) return error.status;
      throw error;
    }
    ws.sendJson(await buildHello({ identity, meshId }));
    const answer = await ws.waitFor(() => ws.messages.find((m) => m.includes('"hello_ack"') || m.includes('"error"')), 10_000, "the hello's answer");
    ws.destroy();
    const frame = JSON.parse(answer) as { type: string; code?: string };
    return frame.type === "hello_ack" ? "admitted" : String(frame.code);
  }

  test("a member at its own cap trying new sessions in a loop is turned away with 429; members refused by a full mesh are not", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 3 });
    const [greedy, second, late] = members as [SetupMember, SetupMember, SetupMember];
    const kept = await pool.connect(broker.wsUrl, greedy, mesh.id);
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await helloFrom("198.51.100.31", greedy.identity, mesh.id));
    expect(answers).toEqual(["capacity", "capacity", 429]);

    // The mesh full: its refusals are not the member's doing, however many.
    await pool.connect(broker.wsUrl, second, mesh.id);
    const meshFull = [];
    for (let i = 0; i < 3; i++) meshFull.push(await helloFrom("198.51.100.32", late.identity, mesh.id));
    expect(meshFull).toEqual(["capacity", "capacity", "capacity"]);
    expect(await kept.request({ type: "ping" })).toMatchObject({ type: "pong" });
  });
});
