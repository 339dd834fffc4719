// The SDK options an application that must not lose a message needs (the MCP
// server for Claude Code is one): manual acks, unreadable messages handed over
// with what is known of them, and calls that fail fast instead of waiting for a
// broker that is gone or silent.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { freePort, setupMesh, TestBroker, TestPeer, waitUntil, type SetupMember } from "@switchboard/testkit";
import { HttpSender, SwitchboardClient, SwitchboardError, type Message, type UnreadableMessage } from "../src/index.ts";
import { UNHEARD_EPHEMERAL } from "../src/receiver.ts";
import { controllableWebSocket, failureWhileStopped, pingAnswered, pushesOf, recordingControllable, testClients, type RawFrame } from "./support.ts";

// A fixed port: one test stops the broker and starts it again where the clients look for it.
let broker: TestBroker;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  broker = await TestBroker.start({ BROKER_PORT: String(await freePort()) });
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});
afterAll(() => broker?.dispose());

async function pair() {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
  return { mesh, alice: members[0] as SetupMember, bob: members[1] as SetupMember };
}

const { connect: client } = testClients(() => broker.url);

/** Waits until the ack of messageId was written, then for a pong: frames are handled in order, so the broker applied it. */
async function ackApplied(c: SwitchboardClient, ackedIds: string[], messageId: string): Promise<void> {
  await waitUntil(() => ackedIds.includes(messageId), 10_000, `the ack of ${messageId}`);
  await c.ping();
}

/** Bob on manual acks over a recording socket, Alice to write to him, and the count of Bob's opens. */
async function manualAcks() {
  const { mesh, alice, bob } = await pair();
  const frames: RawFrame[] = [];
  const acked: string[] = [];
  const control = recordingControllable(frames, acked);
  const b = await client(mesh.id, bob, { acks: "manual", WebSocket: control.WebSocket });
  const seen: Message[] = [];
  b.on("message", (m) => seen.push(m));
  let opened = 0;
  b.on("open", () => opened++);
  const a = await client(mesh.id, alice);
  return { a, b, bob, frames, acked, control, seen, opens: () => opened };
}

test('acks: "manual" — a message the application has not acked is pushed again after a reconnect; once acked, never again', async () => {
  const { a, b, bob, frames, acked, control, seen, opens } = await manualAcks();

  const first = await a.send(bob.pubkey, "first");
  await waitUntil(() => seen.length === 1, 10_000, "the first message");
  // Not acked: dropping the socket makes the broker push it again on the next one.
  control.sockets.at(-1)?.close();
  await waitUntil(() => pushesOf(frames, first.messageId).length === 2, 10_000, "the first message pushed again");
  expect(pushesOf(frames, first.messageId)[1]).toMatchObject({ attempt: 2 });
  // The application is still on it: it does not see it twice, and nothing acked it.
  expect(seen.map((m) => m.payload)).toEqual(["first"]);
  expect(acked).toEqual([]);

  b.ack(first.messageId);
  await ackApplied(b, acked, first.messageId);
  const opensBefore = opens();
  control.sockets.at(-1)?.close();
  await waitUntil(() => opens() > opensBefore, 10_000, "the reconnect");
  // The marker: a later message from the same sender arrives; the acked one was not pushed before it.
  const second = await a.send(bob.pubkey, "second");
  await waitUntil(() => pushesOf(frames, second.messageId).length === 1, 10_000, "the second message");
  expect(pushesOf(frames, first.messageId)).toHaveLength(2);
  expect(seen.map((m) => m.payload)).toEqual(["first", "second"]);
});

test('acks: "manual" — a message whose listener threw is handed over again when the broker pushes it again, not held as a duplicate for good', async () => {
  const { mesh, alice, bob } = await pair();
  const control = controllableWebSocket();
  const b = await client(mesh.id, bob, { acks: "manual", WebSocket: control.WebSocket });
  const seen: string[] = [];
  const errors: string[] = [];
  b.on("error", (e) => errors.push(e.code));
  b.on("message", (m) => {
    seen.push(m.messageId);
    if (seen.length === 1) throw new Error("not now");
    b.ack(m.messageId);
  });
  const a = await client(mesh.id, alice);
  const sent = await a.send(bob.pubkey, "once more");
  await waitUntil(() => seen.length === 1 || undefined, 10_000, "the first hand-over");
  // Not acked: dropping the socket makes the broker push it again on the next one.
  control.sockets.at(-1)?.close();
  await waitUntil(() => seen.length === 2 || undefined, 10_000, "the message handed over again");
  expect(seen).toEqual([sent.messageId, sent.messageId]);
  expect(errors).toEqual(["listener_error"]);
});

test('acks: "manual" — an id that is not a message id is refused at once, and the acks given with it still reach the broker', async () => {
  const { a, b, bob, frames, acked, control, seen, opens } = await manualAcks();
  const first = await a.send(bob.pubkey, "first");
  await waitUntil(() => seen.length === 1, 10_000, "the first message");
  // Given in the same tick, a bad id would share the real ack's frame, which the broker refuses whole.
  let refused: unknown = null;
  try {
    b.ack("not-a-message-id");
  } catch (error) {
    refused = error;
  }
  b.ack(first.messageId);
  await ackApplied(b, acked, first.messageId);
  expect(refused).toBeInstanceOf(SwitchboardError);
  expect(refused).toMatchObject({ code: "invalid" });
  expect(acked).toEqual([first.messageId]);
  // Applied: after a reconnect, a later message from the same sender comes and the first is not pushed again.
  const opensBefore = opens();
  control.sockets.at(-1)?.close();
  await waitUntil(() => opens() > opensBefore, 10_000, "the reconnect");
  const second = await a.send(bob.pubkey, "second");
  await waitUntil(() => pushesOf(frames, second.messageId).length === 1, 10_000, "the second message");
  expect(pushesOf(frames, first.messageId)).toHaveLength(1);
});

test('acks: "auto" (the default) needs no ack() and ack() changes nothing', async () => {
  const { mesh, alice, bob } = await pair();
  const frames: RawFrame[] = [];
  const acked: string[] = [];
  const control = recordingControllable(frames, acked);
  const b = await client(mesh.id, bob, { WebSocket: control.WebSocket });
  let opens = 0;
  b.on("open", () => opens++);
  b.on("message", () => {});
  const a = await client(mesh.id, alice);
  const first = await a.send(bob.pubkey, "first");
  await waitUntil(() => pushesOf(frames, first.messageId).length === 1, 10_000, "the first message");
  await ackApplied(b, acked, first.messageId);
  b.ack(first.messageId);
  control.sockets.at(-1)?.close();
  await waitUntil(() => opens > 0, 10_000, "the reconnect");
  const second = await a.send(bob.pubkey, "second");
  await waitUntil(() => pushesOf(frames, second.messageId).length === 1, 10_000, "the second message");
  expect(pushesOf(frames, first.messageId)).toHaveLength(1);
  expect(acked.filter((id) => id === first.messageId)).toHaveLength(1);
});

test("an ephemeral push is handed over marked ephemeral and never acked, in either mode; manual ack() of it writes nothing", async () => {
  for (const acks of ["auto", "manual"] as const) {
    const { mesh, alice, bob } = await pair();
    const frames: RawFrame[] = [];
    const acked: string[] = [];
    const control = recordingControllable(frames, acked);
    const b = await client(mesh.id, bob, { acks, WebSocket: control.WebSocket });
    const seen: Message[] = [];
    b.on("message", (m) => {
      seen.push(m);
      if (acks === "manual") b.ack(m.messageId);
    });
    const a = await client(mesh.id, alice);
    const fleeting = await a.send(bob.pubkey, "fleeting", { ephemeral: true });
    expect(fleeting).toMatchObject({ queued: false, recipients: 1 });
    const kept = await a.send(bob.pubkey, "kept");
    // Acks go out in the order their pushes came: one of the ephemeral push would be in this frame or before it.
    await ackApplied(b, acked, kept.messageId);
    expect(seen.map((m) => [m.payload, m.ephemeral])).toEqual([
      ["fleeting", true],
      ["kept", false],
    ]);
    expect(acked).toEqual([kept.messageId]);
  }
});

test("ephemeral pushes that come while nothing listens wait for a listener, the newest UNHEARD_EPHEMERAL of them; every durable one waits", async () => {
  const { mesh, alice, bob } = await pair();
  const frames: RawFrame[] = [];
  const control = recordingControllable(frames);
  const b = await client(mesh.id, bob, { WebSocket: control.WebSocket });
  const a = await client(mesh.id, alice);
  const before = await a.send(bob.pubkey, "durable before");
  const count = UNHEARD_EPHEMERAL + 50;
  for (let i = 0; i < count; i++) await a.send(bob.pubkey, i, { ephemeral: true });
  const after = await a.send(bob.pubkey, "durable after");
  await waitUntil(() => pushesOf(frames).length === count + 2, 30_000, "every push at bob's socket");
  const seen: Message[] = [];
  b.on("message", (m) => seen.push(m));
  await waitUntil(() => seen.some((m) => m.messageId === after.messageId), 10_000, "the held pushes handed over");
  const durable = seen.filter((m) => !m.ephemeral).map((m) => m.messageId);
  expect(durable.sort()).toEqual([before.messageId, after.messageId].sort());
  expect(seen.filter((m) => m.ephemeral).map((m) => m.payload)).toEqual(Array.from({ length: UNHEARD_EPHEMERAL }, (_, i) => i + 50));
});

test("a push that does not open is handed over as unreadable, with its sender, target and id", async () => {
  const { mesh, alice, bob } = await pair();
  const b = await client(mesh.id, bob, { acks: "manual" });
  const unreadable: UnreadableMessage[] = [];
  const errors: SwitchboardError[] = [];
  b.on("unreadable", (m) => unreadable.push(m));
  b.on("error", (e) => errors.push(e));
  const raw = await TestPeer.connect(broker.wsUrl, { identity: alice.identity, meshId: mesh.id });
  cleanup.push(() => raw.close());
  const ack = await raw.send(bob.pubkey, { nonce: "x1:AAAA", ciphertext: "bm90IGEgcmVhbCBjaXBoZXJ0ZXh0", priority: "now" });
  const [got] = await waitUntil(() => (unreadable.length > 0 ? unreadable : undefined), 10_000, "the unreadable message");
  expect(got).toMatchObject({
    messageId: ack.messageId,
    senderPubkey: alice.pubkey,
    targetSpec: bob.pubkey,
    priority: "now",
    encrypted: true,
    replyTo: null,
  });
  expect(got?.error.code).toBe("decrypt_failed");
  expect(errors.map((e) => e.code)).toEqual(["decrypt_failed"]);
});

test('acks: "manual" — an unreadable push with no unreadable listener (the application is never told its id) is acked by the SDK, not held for good', async () => {
  const { mesh, alice, bob } = await pair();
  const frames: RawFrame[] = [];
  const acked: string[] = [];
  const control = recordingControllable(frames, acked);
  const b = await client(mesh.id, bob, { acks: "manual", ackDelayMs: 0, WebSocket: control.WebSocket });
  const seen: Message[] = [];
  const errors: string[] = [];
  b.on("message", (m) => seen.push(m));
  b.on("error", (e) => errors.push(e.code));
  const raw = await TestPeer.connect(broker.wsUrl, { identity: alice.identity, meshId: mesh.id });
  cleanup.push(() => raw.close());
  const bad = await raw.send(bob.pubkey, { nonce: "x1:AAAA", ciphertext: "bm90IGEgcmVhbCBjaXBoZXJ0ZXh0", priority: "now" });
  await waitUntil(() => errors.length > 0, 10_000, "the unreadable message reported");
  // Held unacked, it would come back every lease and take one of the broker's outstanding pushes for good.
  await ackApplied(b, acked, String(bad.messageId));
  expect({ seen, errors }).toEqual({ seen: [], errors: ["decrypt_failed"] });
});

test('offline: "fail" rejects calls at once with "unavailable" while the broker is down, and works again after the reconnect', async () => {
  const { mesh, alice, bob } = await pair();
  const a = await client(mesh.id, alice, { offline: "fail" });
  let reconnects = 0;
  a.on("reconnect", () => {
    reconnects++;
  });
  await broker.stop();
  await waitUntil(() => !a.connected, 10_000, "the client to see the broker gone");
  // A broker shutting down may still admit a hello before it closes: only a reconnect after the
  // new broker has started counts.
  const before = reconnects;
  const failure = await a.send(bob.pubkey, "while down").then(
    () => null,
    (error: unknown) => error,
  );
  expect(failure).toBeInstanceOf(SwitchboardError);
  expect((failure as SwitchboardError).code).toBe("unavailable");
  await broker.start();
  await waitUntil(() => reconnects > before && a.connected, 20_000, "the reconnect to the new broker");
  expect((await a.send(bob.pubkey, "after")).recipients).toBe(1);
});

test("requestTimeoutMs: a call the broker does not answer rejects with timeout instead of waiting", async () => {
  const { mesh, alice } = await pair();
  const a = await client(mesh.id, alice, { requestTimeoutMs: 500 });
  const failure = await failureWhileStopped(broker.process.pid, () => a.ping());
  expect((failure as SwitchboardError).code).toBe("timeout");
  expect(await pingAnswered(a)).toBeGreaterThan(0);
});

test("a send that timed out names its id: sent again with it, the broker stores it once", async () => {
  const { mesh, alice, bob } = await pair();
  const a = await client(mesh.id, alice, { requestTimeoutMs: 500 });
  const b = await client(mesh.id, bob);
  const received: Message[] = [];
  b.on("message", (m) => received.push(m));
  const failure = await failureWhileStopped(broker.process.pid, () => a.send(bob.pubkey, "once"));
  expect(failure).toBeInstanceOf(SwitchboardError);
  const { code, sendId } = failure as SwitchboardError;
  expect(code).toBe("timeout");
  expect(sendId).toMatch(/^[0-9a-f-]{36}$/);
  // Whether or not the broker went on to store the first frame, the id makes it one message.
  // (From a client without the 500 ms timeout: a broker just resumed may take longer.)
  const patient = await client(mesh.id, alice);
  const again = await patient.send(bob.pubkey, "once", { id: sendId! });
  const once = await patient.send(bob.pubkey, "once", { id: sendId! });
  expect(once).toMatchObject({ messageId: again.messageId, duplicate: true });
  const marker = await patient.send(bob.pubkey, "marker");
  await waitUntil(() => received.some((m) => m.messageId === marker.messageId), 10_000, "the marker");
  expect(received.map((m) => m.payload)).toEqual(["once", "marker"]);
});

describe.each([
  ["that tells its limit in the hello_ack: acks go in frames within it, no socket is lost", false, []],
  ["that does not tell its limit (1009): acks go in smaller frames after the first is refused", true, [1009]],
] as const)("a broker whose MAX_MESSAGE_BYTES is too small for a frame of 200 acks, %s", (_, hidden, closes) => {
  test("every ack reaches it", async () => {
    // 200 ids make a frame of about 7.8 KB.
    const small = await TestBroker.start({ MAX_MESSAGE_BYTES: "4096", SEND_RATE_LIMIT_PER_MIN: "100000" });
    cleanup.push(() => small.dispose());
    const { mesh, members } = await setupMesh(small.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const control = controllableWebSocket();
    control.hideFrameLimit = hidden;
    const sender = await TestPeer.connect(small.wsUrl, { identity: alice.identity, meshId: mesh.id });
    cleanup.push(() => sender.close());
    const b = await SwitchboardClient.connect({
      url: small.url,
      meshId: mesh.id,
      secretKey: bob.identity.secretKey,
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
      acks: "manual",
      WebSocket: control.WebSocket,
    });
    cleanup.push(() => b.close());
    const got = new Set<string>();
    b.on("message", (m) => got.add(m.messageId));
    const tooLarge: number[] = [];
    b.on("close", (c) => {
      if (c.code === 1009) tooLarge.push(c.code);
    });
    const plain = { nonce: "plain", ciphertext: Buffer.from(JSON.stringify("m")).toString("base64") };
    const sent: string[] = [];
    for (let i = 0; i < 250; i++) sent.push(String((await sender.send(bob.pubkey, plain)).messageId));
    await waitUntil(() => sent.every((id) => got.has(id)), 30_000, "bob's 250 messages");
    // Acked all at once: 200 ids in one frame would be too large for this broker.
    for (const id of sent) b.ack(id);
    // Every ack reaches the broker (the sender sees its messages acked).
    const statuses = await HttpSender.create({ url: small.url, token: await small.admin.createApiToken(mesh.id, alice.id) });
    const state = async (id: string) => (await statuses.status(id)).recipients[0]?.state;
    await waitUntil(async () => (await Promise.all(sent.map(state))).every((s) => s === "acked"), 30_000, "all 250 acked");
    // Told the limit, no frame was too large; not told, the first one only.
    expect(tooLarge).toEqual([...closes]);
  });
});

test("a broker whose lease is shorter than three times ackDelayMs (its hello_ack tells it) gets each ack within a third of its lease, before it would push the message again", async () => {
  const short = await TestBroker.start({ LEASE_SECONDS: "3" });
  cleanup.push(() => short.dispose());
  const { mesh, members } = await setupMesh(short.admin, { members: ["alice", "bob"] });
  const [alice, bob] = members as [SetupMember, SetupMember];
  const frames: RawFrame[] = [];
  const acked: string[] = [];
  const control = recordingControllable(frames, acked);
  const b = await SwitchboardClient.connect({
    url: short.url,
    meshId: mesh.id,
    secretKey: bob.identity.secretKey,
    ackDelayMs: 10_000,
    WebSocket: control.WebSocket,
  });
  cleanup.push(() => b.close());
  b.on("message", () => {});
  expect(frames.find((f) => f.type === "hello_ack")).toMatchObject({ leaseSeconds: 3 });
  const a = await SwitchboardClient.connect({ url: short.url, meshId: mesh.id, secretKey: alice.identity.secretKey });
  cleanup.push(() => a.close());

  const sent = await a.send(bob.pubkey, "held no longer than the lease allows");
  // Held for the 10 s asked, the ack would come after the 3 s lease ran out and the broker pushed the message again.
  await waitUntil(() => acked.includes(sent.messageId), 20_000, "the ack");
  await b.ping();
  expect(pushesOf(frames, sent.messageId)).toHaveLength(1);
});
