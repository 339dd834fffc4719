// PROTOCOL.md §1, the session frames besides send/push/client_ack: ping,
// join/leave, list_peers, set_status, reqId echo, and how the broker answers
// frames it cannot use (error "invalid", connection kept).
import { afterAll, describe, expect, test } from "bun:test";
import {
  PeerPool,
  pushesBeforeMarker,
  setupMesh,
  TestPeer,
  useTestBroker,
  type ConnectOptions,
  type Frame,
  type SetupMember,
} from "@switchboard/testkit";
import { ISO } from "./support/messaging.ts";

const broker = useTestBroker({ MAX_MESSAGE_BYTES: "4096" });
const pool = new PeerPool();
afterAll(() => pool.closeAll());

/** A connected peer, closed after the file's tests. */
const connect = (member: SetupMember, meshId: string, options: Partial<ConnectOptions> = {}) =>
  pool.connect(broker.wsUrl, member, meshId, options);

/** One connected peer per member of a new mesh. */
async function meshOf(names: string[]): Promise<{ meshId: string; members: SetupMember[]; peers: TestPeer[] }> {
  const { mesh, members } = await setupMesh(broker.admin, { members: names });
  const connected: TestPeer[] = [];
  for (const m of members) connected.push(await connect(m, mesh.id, { sessionId: `${m.displayName}-session` }));
  return { meshId: mesh.id, members, peers: connected };
}

/** Asserts the peer is still usable: a ping gets its pong. */
async function expectAlive(peer: TestPeer): Promise<void> {
  expect(peer.isOpen).toBe(true);
  const pong = await peer.request({ type: "ping" });
  expect(pong.type).toBe("pong");
}

interface PeerEntry {
  pubkey: string;
  displayName: string;
  presences: Array<{ sessionId: string; status: string; statusSource: string; connectedAt: string }>;
}

async function listPeers(peer: TestPeer): Promise<PeerEntry[]> {
  const reply = await peer.request({ type: "list_peers" });
  expect(reply.type).toBe("peers");
  return reply.peers as PeerEntry[];
}

describe("session frames", () => {
  test("ping → pong with serverTime and the reqId", async () => {
    const { peers: [a] } = await meshOf(["Ada"]);
    const before = Date.now();
    const pong = await a!.request({ type: "ping", reqId: "ping-1" });
    expect(pong).toEqual({ type: "pong", reqId: "ping-1", serverTime: expect.any(Number) });
    // The broker's clock (same host), not some other number.
    expect(pong.serverTime as number).toBeGreaterThanOrEqual(before - 5_000);
    expect(pong.serverTime as number).toBeLessThanOrEqual(Date.now() + 5_000);
  });

  test("join and leave answer ack; a #channel send reaches joined members and stops after leave", async () => {
    const { peers: [sender, stays, leaves, outsider] } = await meshOf(["sender", "stays", "leaves", "outsider"]);
    expect(await stays!.request({ type: "join", channel: "#room", reqId: "j1" })).toEqual({
      type: "ack",
      reqId: "j1",
      channel: "#room",
      joined: true,
    });
    expect((await leaves!.request({ type: "join", channel: "#room" })).joined).toBe(true);
    // Joining twice is harmless.
    expect((await leaves!.request({ type: "join", channel: "#room" })).joined).toBe(true);

    const first = await sender!.send("#room", { ciphertext: "to-the-room-1" });
    expect(first).toMatchObject({ type: "ack", queued: true, recipients: 2 });
    for (const p of [stays!, leaves!]) {
      const [push] = await p.waitForPushes(1);
      expect(push).toMatchObject({ messageId: first.messageId, targetSpec: "#room", ciphertext: "to-the-room-1" });
      p.ack([String(push!.messageId)]);
    }

    expect(await leaves!.request({ type: "leave", channel: "#room", reqId: "l1" })).toEqual({
      type: "ack",
      reqId: "l1",
      channel: "#room",
      joined: false,
    });
    const second = await sender!.send("#room", { ciphertext: "to-the-room-2" });
    expect(second).toMatchObject({ type: "ack", queued: true, recipients: 1 });
    const pushes = await stays!.waitForPushes(2);
    expect(pushes[1]).toMatchObject({ messageId: second.messageId, ciphertext: "to-the-room-2" });

    // Pushed in queue order: a push of `second` to them would come before these markers.
    expect((await pushesBeforeMarker(sender!, leaves!)).map((p) => p.messageId)).toEqual([first.messageId]);
    expect(await pushesBeforeMarker(sender!, outsider!)).toEqual([]);
    expect(await pushesBeforeMarker(stays!, sender!)).toEqual([]);
  });

  test("list_peers lists live presences with their fields, and no ghost after a peer closes its socket", async () => {
    const { members, peers: [a, b] } = await meshOf(["Ada", "Bob"]);
    const list = await listPeers(a!);
    const byKey = new Map(list.map((p) => [p.pubkey, p]));
    expect(list.length).toBe(2);
    for (const [member, sessionId] of [
      [members[0]!, "Ada-session"],
      [members[1]!, "Bob-session"],
    ] as const) {
      expect(byKey.get(member.pubkey)).toEqual({
        pubkey: member.pubkey,
        displayName: member.displayName,
        presences: [{ sessionId, status: "idle", statusSource: expect.any(String), connectedAt: expect.stringMatching(ISO) }],
      });
    }

    // A second presence of Bob shows under the same peer.
    await connect(members[1]!, a!.meshId, { sessionId: "Bob-second" });
    const withTwo = await listPeers(a!);
    expect(withTwo.find((p) => p.pubkey === members[1]!.pubkey)?.presences.map((p) => p.sessionId).sort()).toEqual([
      "Bob-second",
      "Bob-session",
    ]);

    await b!.close();
    const bobSessions = async () =>
      (await listPeers(a!)).find((p) => p.pubkey === members[1]!.pubkey)?.presences.map((p) => p.sessionId) ?? [];
    // A bound for a loaded machine, not a figure: the close is usually seen within milliseconds.
    const deadline = Date.now() + 30_000;
    while ((await bobSessions()).includes("Bob-session") && Date.now() < deadline) await Bun.sleep(100);
    expect(await bobSessions()).toEqual(["Bob-second"]);
    expect((await listPeers(a!)).find((p) => p.pubkey === members[0]!.pubkey)?.presences.length).toBe(1);
  });

  test("an unknown frame type is answered with error invalid and the connection stays open", async () => {
    const { peers: [a] } = await meshOf(["Ada"]);
    for (const type of ["teleport", "", "HELLO_ACK", "pong", "push"]) {
      const error = await a!.request({ type, reqId: `u-${type}` });
      expect(error).toMatchObject({ type: "error", code: "invalid", message: expect.any(String) });
    }
    const untyped = await a!.request({ channel: "#room" });
    expect(untyped).toMatchObject({ type: "error", code: "invalid" });
    await expectAlive(a!);
  });

  test("a frame failing its schema is answered with error invalid and the connection stays open", async () => {
    const { peers: [a] } = await meshOf(["Ada"]);
    const bad: Frame[] = [
      { type: "join", channel: "room" },
      { type: "join" },
      { type: "leave", channel: "#" },
      { type: "set_status", status: "sleeping" },
      { type: "set_status", status: "working", source: "hook" },
      { type: "client_ack", messageIds: [] },
      { type: "client_ack", messageIds: ["not-a-uuid"] },
      { type: "send", targetSpec: "nobody", nonce: "n", ciphertext: "c" },
    ];
    for (const frame of bad) {
      const error = await a!.request(frame);
      expect({ frame, type: error.type, code: error.code }).toEqual({ frame, type: "error", code: "invalid" });
      expect(typeof error.message).toBe("string");
    }
    // A missing field is named as required, each field at fault in one answer.
    expect(await a!.request({ type: "send", targetSpec: "*", ciphertext: 1 })).toMatchObject({
      code: "invalid",
      message: "nonce: required; ciphertext: Invalid input: expected string, received number",
    });
    // Frames that are not objects at all, without a reqId to answer on.
    for (const text of ["not json", "[]", "null", "42", '"ping"']) {
      a!.sendRaw(text);
      expect(await a!.nextFrame("error")).toMatchObject({ code: "invalid" });
    }
    await expectAlive(a!);
  });

  test("a second hello on an accepted connection is answered with error invalid and the connection stays open", async () => {
    const { peers: [a] } = await meshOf(["Ada"]);
    const again = { ...a!.helloFrame, reqId: "hello-again" };
    const error = await a!.request(again);
    expect(error).toMatchObject({ type: "error", code: "invalid", reqId: "hello-again" });
    // Frames are answered in order: any other answer to the second hello came before the pong.
    await expectAlive(a!);
    expect(a!.frames.filter((f) => f.type === "hello_ack").length).toBe(1);
    // The presence is the same one: still a single presence for this session.
    const mine = (await listPeers(a!)).find((p) => p.pubkey === a!.identity.publicKey);
    expect(mine?.presences.map((p) => p.sessionId)).toEqual(["Ada-session"]);
  });

  test("set_status replies with a status frame", async () => {
    const { peers: [a, b] } = await meshOf(["Ada", "Bob"]);
    expect(await a!.request({ type: "set_status", status: "working", reqId: "s1" })).toEqual({
      type: "status",
      reqId: "s1",
      status: "working",
      statusSource: "manual",
    });
    const seen = (await listPeers(b!)).find((p) => p.pubkey === a!.identity.publicKey);
    expect(seen?.presences[0]).toMatchObject({ status: "working", statusSource: "manual" });

    expect(await a!.request({ type: "set_status", status: "dnd", source: "manual", reqId: "s2" })).toEqual({
      type: "status",
      reqId: "s2",
      status: "dnd",
      statusSource: "manual",
    });
    expect(await a!.request({ type: "set_status", status: "idle", reqId: "s3" })).toMatchObject({
      type: "status",
      status: "idle",
      statusSource: "manual",
    });
  });

  test("a reqId of up to 64 characters is echoed on every direct reply", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["Ada", "Bob"] });
    const longest = "q".repeat(64);
    const b = await connect(members[1]!, mesh.id);
    const a = await connect(members[0]!, mesh.id, { helloOverrides: { reqId: `h${longest.slice(1)}` } });
    expect(a.helloAck?.reqId).toBe(`h${longest.slice(1)}`);

    const frames: Frame[] = [
      { type: "ping" },
      { type: "join", channel: "#echo" },
      { type: "leave", channel: "#echo" },
      { type: "list_peers" },
      { type: "set_status", status: "idle" },
      { type: "send", targetSpec: b.identity.publicKey, nonce: "n", ciphertext: "c" },
      { type: "send", targetSpec: "#no-such-channel", nonce: "n", ciphertext: "c" },
      { type: "teleport" },
    ];
    const expectedTypes = ["pong", "ack", "ack", "peers", "status", "ack", "error", "error"];
    for (const [i, frame] of frames.entries()) {
      const reqId = `${i}${longest.slice(1)}`;
      expect(reqId.length).toBe(64);
      const reply = await a.request({ ...frame, reqId });
      expect({ reqId: reply.reqId, type: reply.type }).toEqual({ reqId, type: expectedTypes[i] });
    }
    const short = await a.request({ type: "ping", reqId: "x" });
    expect(short.reqId).toBe("x");

    // Longer than the contract allows: refused by the schema, connection kept.
    a.sendFrame({ type: "ping", reqId: "z".repeat(65) });
    expect(await a.nextFrame("error")).toMatchObject({ code: "invalid" });
    await expectAlive(a);
  });

  test("after a burst of garbage frames the broker still answers /health 200 and serves peers", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["Ada", "Bob"] });
    const firstLog = broker.process.logs.length;
    const a = await connect(members[0]!, mesh.id);
    const garbage: string[] = [
      "",
      "{",
      "}}}",
      "null",
      "true",
      "[[[[[[[[[[]]]]]]]]]]",
      "\u0000\u0001\u0002",
      "\ud83d\ude00",
      '{"type":null}',
      '{"type":{"nested":"object"}}',
      '{"type":["ping"]}',
      '{"type":"ping","reqId":{"toString":1}}',
      '{"type":"ping","reqId":123}',
      '{"__proto__":{"type":"ping"},"reqId":"p"}',
      '{"constructor":{"prototype":{"polluted":true}}}',
      '{"type":"send","targetSpec":"*","nonce":"n","ciphertext":"c","ttlSeconds":1e400}',
      '{"type":"send","targetSpec":"*","nonce":"n","ciphertext":"c","replyTo":"x"}',
      '{"type":"client_ack","messageIds":"all"}',
      '{"type":"set_status","status":"idle","source":null}',
      '{"type":"join","channel":"#' + "a".repeat(3000) + '"}',
      JSON.stringify({ type: "list_peers", deep: JSON.parse("[".repeat(500) + "]".repeat(500)) as unknown }),
    ];
    const BURST = 300;
    for (let i = 0; i < BURST; i++) a.sendRaw(garbage[i % garbage.length]!);
    a.sendFrame({ type: "ping", reqId: "after-garbage" });
    await a.nextFrame((f) => f.reqId === "after-garbage", 30_000);
    expect(a.isOpen).toBe(true);

    // Garbage as the first frame of many connections at once.
    const raws = await Promise.all(
      Array.from({ length: 20 }, () => TestPeer.connect(broker.wsUrl, { identity: members[1]!.identity, meshId: mesh.id, hello: false })),
    );
    pool.peers.push(...raws);
    raws.forEach((r, i) => r.sendRaw(garbage[i % garbage.length]!));
    await Promise.all(raws.map((r) => r.closed));

    const health = await fetch(`${broker.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "ok", db: "up" });
    const b = await connect(members[1]!, mesh.id);
    await expectAlive(b);
    // Nothing logged at error level or above (pino: 50 = error) while handling it.
    const errors = broker.process.logs.slice(firstLog).filter((l) => (l.level ?? 0) >= 50);
    expect(errors).toEqual([]);
  });
});
