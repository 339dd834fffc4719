// A member's admitted hellos are limited per minute (HELLO_RATE_LIMIT_PER_MIN):
// a key that reconnects in a loop, each hello replacing its own session,
// would otherwise write a presence and its audit rows per hello, and send
// every other member's presence subscription a `left` and a `joined` each
// time, without end.
import { afterEach, describe, expect, test } from "bun:test";
import { PeerError, PeerPool, setupMesh, TestPeer, useTestBroker, type SetupMember } from "@switchboard/testkit";

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
