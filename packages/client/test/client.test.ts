// The SDK against a real broker: end-to-end encryption as seen on the wire,
// broadcast and channels, request/reply, de-duplication of redelivered pushes,
// refused hellos, and the close codes that end a client.
import { afterEach, describe, expect, spyOn, test } from "bun:test";
import {
  backendKind,
  failOnInsert,
  newIdentity,
  sendLeaseProbe,
  setupMesh,
  TestPeer,
  useTestBroker,
  waitUntil,
  within,
  type SetupMember,
} from "@switchboard/testkit";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as backoff from "../src/backoff.ts";
import {
  generateKeypair,
  HttpSender,
  MAX_ACK_DELAY_MS,
  SwitchboardClient,
  SwitchboardError,
  transcriptDir,
  watchTranscriptStatus,
  type ConnectionState,
  type PresenceEvent,
} from "../src/index.ts";
import {
  collect,
  controllableWebSocket,
  failureWhileStopped,
  fakeBroker,
  noSendAcksWebSocket,
  pingAnswered,
  pushesOf,
  recordingControllable,
  recordingWebSocket,
  slowPongWebSocket,
  testClients,
  type RawFrame,
} from "./support.ts";

// A 1 s lease makes unacked pushes come back quickly (the de-dup test needs redeliveries).
const broker = useTestBroker({ LEASE_SECONDS: "1" });
const clients = testClients(() => broker.wsUrl);
const { connect } = clients;
const peers: TestPeer[] = [];

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
});

/** A raw peer of the member, closed after the test. */
async function rawPeer(meshId: string, member: SetupMember): Promise<TestPeer> {
  const peer = await TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId });
  peers.push(peer);
  return peer;
}

describe("SwitchboardClient", () => {
  test("a direct message is encrypted on the wire and the recipient decrypts it", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const a = await connect(mesh.id, alice);
    // A raw peer holding bob's key sees exactly what the broker forwards.
    const raw = await TestPeer.connect(broker.wsUrl, { identity: bob.identity, meshId: mesh.id });
    peers.push(raw);

    const payload = { text: "the launch code is 0000", n: 42 };
    const sent = await a.send(bob.pubkey, payload);
    expect(sent).toMatchObject({ queued: true, recipients: 1, duplicate: false });
    const [push] = await raw.waitForPushes(1);
    expect(push!.messageId).toBe(sent.messageId);
    expect(String(push!.nonce)).toMatch(/^x1:/);
    const wire = Buffer.from(String(push!.ciphertext), "base64").toString("latin1");
    expect(wire).not.toContain("launch");
    expect(String(push!.ciphertext)).not.toBe(Buffer.from(JSON.stringify(payload)).toString("base64"));
    await raw.close(); // unacked: the broker delivers it again to bob's next session

    const b = await connect(mesh.id, bob);
    const got = collect(b);
    await waitUntil(() => got.messages.length >= 1, 10_000, "bob's message");
    expect(got.messages[0]).toEqual({
      messageId: sent.messageId,
      senderPubkey: alice.pubkey,
      targetSpec: bob.pubkey,
      priority: "next",
      createdAt: expect.any(String),
      replyTo: null,
      encrypted: true,
      ephemeral: false,
      payload,
    });
    expect(got.errors).toEqual([]);
  });

  test("a push that does not decrypt is an error event, acked, never a message", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob", "probe"] });
    const [alice, bob, probeMember] = members as [SetupMember, SetupMember, SetupMember];
    const frames: RawFrame[] = [];
    const sent: RawFrame[] = [];
    const b = await connect(mesh.id, bob, { WebSocket: recordingWebSocket(frames, sent) });
    const got = collect(b);
    const forger = await rawPeer(mesh.id, alice);
    const ack = await forger.send(bob.pubkey, { nonce: `x1:${Buffer.alloc(24).toString("base64")}`, ciphertext: Buffer.alloc(40).toString("base64") });
    const id = String(ack.messageId);
    await waitUntil(() => got.errors.length >= 1, 10_000, "a decrypt error");
    expect(got.errors[0]).toBeInstanceOf(SwitchboardError);
    expect(got.errors[0]!.code).toBe("decrypt_failed");
    // Acked: once the ack is handled (frames are answered in order, so by the
    // pong), it is never pushed again, though a busy machine may have pushed
    // it again before (the lease is 1 s). An unacked push would be pushed
    // again by the time a probe sent now has had its third push.
    await waitUntil(() => sent.some((f) => f.type === "client_ack" && (f.messageIds as string[]).includes(id)), 10_000, "its ack");
    await pingAnswered(b);
    const pushedBeforeAck = pushesOf(frames, id).length;
    const probe = await sendLeaseProbe(forger, await rawPeer(mesh.id, probeMember));
    await probe(3);
    expect(pushesOf(frames, id)).toHaveLength(pushedBeforeAck);
    expect(got.messages).toEqual([]);
    expect(got.errors).toHaveLength(1);
  });

  test("broadcast without a key goes out plain; a channel key encrypts for those who hold it", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob", "carol"] });
    const [alice, bob, carol] = members as [SetupMember, SetupMember, SetupMember];
    const key = "5a".repeat(32);
    const carolFrames: RawFrame[] = [];
    const a = await connect(mesh.id, alice, { channelKeys: { "#ops": key } });
    const b = await connect(mesh.id, bob, { channelKeys: { "#ops": key } });
    const c = await connect(mesh.id, carol, { WebSocket: recordingWebSocket(carolFrames) });
    const [gotB, gotC] = [collect(b), collect(c)];

    const all = await a.send("*", { hello: "everyone" });
    expect(all.recipients).toBe(2);
    await waitUntil(() => gotB.messages.length >= 1 && gotC.messages.length >= 1, 10_000, "the broadcast");
    for (const got of [gotB, gotC]) {
      expect(got.messages[0]).toMatchObject({ messageId: all.messageId, targetSpec: "*", encrypted: false, payload: { hello: "everyone" } });
    }
    expect(pushesOf(carolFrames, all.messageId)[0]).toMatchObject({ nonce: "plain" });

    await Promise.all([a.join("#ops"), b.join("ops"), c.join("#ops")]);
    const ops = await a.send("#ops", { secret: "rotate keys" });
    expect(ops.recipients).toBe(2);
    await waitUntil(() => gotB.messages.length >= 2 && gotC.errors.length >= 1, 10_000, "the channel message");
    expect(gotB.messages[1]).toMatchObject({ messageId: ops.messageId, targetSpec: "#ops", encrypted: true, payload: { secret: "rotate keys" } });
    const onWire = pushesOf(carolFrames, ops.messageId)[0]!;
    expect(String(onWire.nonce)).toMatch(/^x1:/);
    expect(Buffer.from(String(onWire.ciphertext), "base64").toString("latin1")).not.toContain("rotate");
    expect(gotC.errors[0]!.code).toBe("decrypt_failed");
    expect(gotC.messages).toHaveLength(1);

    // Asking for encryption without a key is refused, not downgraded.
    await expect(c.send("#ops", "x", { encrypt: true })).rejects.toMatchObject({ code: "no_key" });
    await expect(a.send("#nosuch", "x")).rejects.toMatchObject({ code: "unknown_target" });
  });

  test("a channel key named as join takes it (ops for #ops) encrypts that channel's messages", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const key = "5a".repeat(32);
    const a = await connect(mesh.id, alice, { channelKeys: { ops: key } });
    const b = await connect(mesh.id, bob, { channelKeys: { "#ops": key } });
    const got = collect(b);
    await a.join("ops");
    await b.join("ops");
    await a.send("#ops", { text: "rotate the keys" });
    await waitUntil(() => got.messages.length >= 1, 10_000, "bob's channel message");
    expect(got.messages[0]).toMatchObject({ targetSpec: "#ops", encrypted: true, payload: { text: "rotate the keys" } });
  });

  test("a payload JSON cannot carry (a bigint, a cycle) is refused as invalid by send, request and HttpSender, and nothing is written", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const control = controllableWebSocket();
    const a = await connect(mesh.id, alice, { WebSocket: control.WebSocket });
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    for (const payload of [{ n: 1n }, cycle]) {
      await expect(a.send(bob.pubkey, payload)).rejects.toMatchObject({ code: "invalid" });
      await expect(a.send("*", payload)).rejects.toMatchObject({ code: "invalid" });
      await expect(a.request(bob.pubkey, payload)).rejects.toMatchObject({ code: "invalid" });
    }
    const http = await HttpSender.create({ url: broker.url, token: await broker.admin.createApiToken(mesh.id, alice.id) });
    await expect(http.send(bob.pubkey, { n: 1n })).rejects.toMatchObject({ code: "invalid" });
    expect(control.sent.filter((f) => f.type === "send")).toEqual([]);
    expect(a.connected).toBe(true);
  });

  test("an async listener that rejects is reported as listener_error, as one that throws: no unhandled rejection ends the process", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const b = await connect(mesh.id, bob);
    const errors: SwitchboardError[] = [];
    b.on("error", (e) => errors.push(e));
    // The pattern of an application answering each message: its reply fails (a closed client, a refusal) after the listener returned.
    b.on("message", async (m) => {
      await Promise.resolve();
      throw new Error(`could not answer ${String(m.payload)}`);
    });
    // An error listener that rejects is not reported again (that would loop), nor left unhandled.
    b.on("error", async () => {
      await Promise.resolve();
      throw new Error("the error listener failed too");
    });
    const a = await connect(mesh.id, alice);
    await a.send(bob.pubkey, "ping");
    const reported = await waitUntil(() => errors.find((e) => e.code === "listener_error"), 10_000, "the rejection reported");
    expect(reported.message).toBe('a "message" listener threw');
    expect((reported.cause as Error).message).toBe("could not answer ping");
    await pingAnswered(b);
    expect(errors.map((e) => e.code)).toEqual(["listener_error"]);
    // One that rejects once the client has ended tells nothing more: the client's own close was its last event.
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let heard = false;
    b.on("message", async (m) => {
      if (m.payload !== "late") return;
      heard = true;
      await held;
      throw new Error("rejected after the close");
    });
    const events: string[] = [];
    b.on("close", () => events.push("close"));
    b.on("error", (e) => events.push(e.code));
    await a.send(bob.pubkey, "late");
    await waitUntil(() => heard || undefined, 10_000, "the late message");
    await b.close();
    release();
    await Bun.sleep(50);
    expect(events.at(-1)).toBe("close");
  });

  test("a target that is none is refused invalid by send, request and HttpSender naming the forms as the broker does: a pubkey in lowercase", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const control = controllableWebSocket();
    const a = await connect(mesh.id, alice, { WebSocket: control.WebSocket });
    const http = await HttpSender.create({ url: broker.url, token: await broker.admin.createApiToken(mesh.id, alice.id) });
    // 64 hex characters, in capitals: the error said it wanted "a 64-hex pubkey", which this is.
    const shouted = bob.pubkey.toUpperCase();
    const refusal = { code: "invalid", message: `not a target: ${shouted} (a pubkey (64 lowercase hex characters), *, #channel or tag:name)` };
    await expect(a.send(shouted, "hi")).rejects.toMatchObject(refusal);
    await expect(a.request(shouted, "hi")).rejects.toMatchObject(refusal);
    await expect(http.send(shouted, "hi")).rejects.toMatchObject(refusal);
    expect(control.sent.filter((f) => f.type === "send")).toEqual([]);
  });

  test("pushes arriving while close() waits for its last acks are left to the member's next connection, not handed over unacked", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const a = await connect(mesh.id, alice);
    // Acks wait for close(), whose proof that the broker has them comes 500 ms late.
    const b = await connect(mesh.id, bob, { ackDelayMs: MAX_ACK_DELAY_MS, WebSocket: slowPongWebSocket(500) });
    const first = collect(b);
    const before = await a.send(bob.pubkey, { n: 0 });
    await waitUntil(() => first.messages.length === 1, 10_000, "bob's first message");
    const closing = b.close();
    const during: string[] = [];
    for (let n = 1; n <= 5; n++) during.push((await a.send(bob.pubkey, { n })).messageId);
    await closing;

    const next = collect(await connect(mesh.id, bob));
    // Whatever the first connection left unacked comes back before a later message from the same sender.
    const marker = await a.send(bob.pubkey, { marker: true });
    await waitUntil(() => next.messages.some((m) => m.messageId === marker.messageId), 15_000, "the marker");
    const firstIds = first.messages.map((m) => m.messageId);
    const nextIds = next.messages.map((m) => m.messageId);
    // What the first connection handed over it acked; the rest came to the next one: each message once.
    expect(nextIds.filter((id) => firstIds.includes(id))).toEqual([]);
    expect([...firstIds, ...nextIds].sort()).toEqual([before.messageId, ...during, marker.messageId].sort());
  });

  test("frames that arrive while close() waits for its socket to close emit no event: a presence event there is not told after the client ended", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    let letClose = () => {};
    const gate = new Promise<void>((resolve) => (letClose = resolve));
    // Its close handshake starts only once the gate opens: frames the broker sends meanwhile still come.
    const SlowClose = class extends WebSocket {
      override close(code?: number, reason?: string): void {
        void gate.then(() => super.close(code, reason));
      }
    } as typeof WebSocket;
    const a = await connect(mesh.id, alice, { WebSocket: SlowClose });
    await a.subscribePresence();
    const told: string[] = [];
    a.on("presence", (e) => told.push(`${e.event} ${e.pubkey === bob.pubkey ? "bob" : "alice"}`));
    const closing = a.close();
    await waitUntil(() => a.connectionState === "closed", 5000, "the client ended");
    const b = await connect(mesh.id, bob);
    // Frames are answered in order: by bob's pong, alice's socket has been sent his joined event.
    await b.ping();
    await Bun.sleep(100);
    letClose();
    await closing;
    expect(told).toEqual([]);
  });

  test("a socket that drops while close() waits for its last acks ends the client: no reconnect, no error, one close event", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const sockets: WebSocket[] = [];
    const SlowPong = slowPongWebSocket(1500);
    const Recorded = class extends SlowPong {
      constructor(url: string | URL) {
        super(url);
        sockets.push(this);
      }
    } as typeof WebSocket;
    const a = await connect(mesh.id, alice);
    const b = await connect(mesh.id, bob, { ackDelayMs: MAX_ACK_DELAY_MS, WebSocket: Recorded, reconnect: { maxAttempts: 2, minDelayMs: 10, maxDelayMs: 20 } });
    const events = collect(b);
    await a.send(bob.pubkey, "to ack at close");
    await waitUntil(() => events.messages.length === 1, 10_000, "bob's message");
    const closing = b.close();
    sockets.at(-1)!.close(3000, "dropped meanwhile");
    await closing;
    expect(events.closes).toEqual([{ code: 3000, reason: "dropped meanwhile", willReconnect: false }]);
    expect(events.errors).toEqual([]);
    expect(b.connectionState).toBe("closed");
    expect(sockets).toHaveLength(1);
  });

  test("a request whose send was never written withdraws it at its timeout, naming its id; the reconnect writes nothing of it", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const control = controllableWebSocket();
    const a = await connect(mesh.id, alice, { WebSocket: control.WebSocket });
    const b = await connect(mesh.id, bob);
    const got = collect(b);
    // After the drop alice's reconnect is held at its hello until the request has timed out: the
    // request meanwhile waits in the outbox.
    let release = () => {};
    control.holdHellos = new Promise<void>((resolve) => (release = resolve));
    const delay = spyOn(backoff, "backoffDelay").mockReturnValue(10);
    let failure: unknown;
    try {
      control.sockets.at(-1)!.close(3000, "test drop");
      await waitUntil(() => a.connectionState === "reconnecting", 5000, "alice reconnecting");
      failure = await a.request(bob.pubkey, { q: "still there?" }, { timeoutMs: 300 }).then(
        () => null,
        (error: unknown) => error,
      );
    } finally {
      delay.mockRestore();
      control.holdHellos = null;
      release();
    }
    expect(failure).toBeInstanceOf(SwitchboardError);
    expect((failure as SwitchboardError).code).toBe("timeout");
    expect((failure as SwitchboardError).sendId).toMatch(/^[0-9a-f-]{36}$/);
    // Sent after the reconnect, the marker is bob's first message: nothing of the request went out before it.
    await waitUntil(() => a.connectionState === "open", 20_000, "alice back");
    const marker = await a.send(bob.pubkey, { marker: true });
    await waitUntil(() => got.messages.length > 0, 10_000, "the marker");
    expect(got.messages.map((m) => m.messageId)).toEqual([marker.messageId]);
    expect(control.sent.filter((f) => f.type === "send" && f.id === (failure as SwitchboardError).sendId)).toEqual([]);
  });

  test("an ephemeral send whose answer a dropped socket lost is not written again (no second copy); it rejects with unavailable", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const control = controllableWebSocket();
    const a = await connect(mesh.id, alice, { WebSocket: control.WebSocket });
    const got = collect(await connect(mesh.id, bob));
    const sending = a.send(bob.pubkey, { typing: "x" }, { ephemeral: true }).then(
      () => null,
      (error: unknown) => error,
    );
    // Written, and the socket drops before its answer can come back.
    control.sockets.at(-1)!.close(3000, "test drop");
    // No sendId: the broker keeps no id of an ephemeral send, so sending it again with one would not help.
    expect(await sending).toMatchObject({ code: "unavailable", sendId: undefined });
    const marker = await a.send(bob.pubkey, { marker: true });
    await waitUntil(() => got.messages.some((m) => m.messageId === marker.messageId), 10_000, "the marker");
    expect(got.messages.filter((m) => JSON.stringify(m.payload).includes("typing"))).toHaveLength(1);
  });

  test.skipIf(backendKind !== "postgres")("a send answered internal names its id as sendId, which a send again may use (needs DATABASE_URL)", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice] = members as [SetupMember, SetupMember];
    const a = await connect(mesh.id, alice);
    // A broadcast goes in the clear: the statement writing this one is made to fail.
    const text = `refused once ${crypto.randomUUID()}`;
    const release = await failOnInsert(broker.backend.databaseUrl!, { messageCiphertext: Buffer.from(JSON.stringify(text)).toString("base64") });
    let failure: unknown;
    try {
      failure = await a.send("*", text).then(
        () => null,
        (error: unknown) => error,
      );
    } finally {
      await release();
    }
    expect(failure).toBeInstanceOf(SwitchboardError);
    const { code, sendId } = failure as SwitchboardError;
    expect({ code, sendId }).toEqual({ code: "internal", sendId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const again = await a.send("*", text, { id: sendId });
    expect(again).toMatchObject({ id: sendId, duplicate: false, recipients: 1 });
  });

  test("the late error answer to a call that timed out is not emitted as a client-wide error", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const a = await connect(mesh.id, members[0]!, { requestTimeoutMs: 300 });
    const got = collect(a);
    const stranger = await newIdentity();
    // The broker is stopped while the send waits: it answers unknown_target after the caller gave up.
    const failure = await failureWhileStopped(broker.process.pid, () => a.send(stranger.publicKey, "to nobody"));
    expect(failure).toMatchObject({ code: "timeout" });
    // Frames are answered in order: by the pong, the send's late answer has come.
    await pingAnswered(a);
    expect(got.errors).toEqual([]);
  });

  test("request/reply", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob", "carol"] });
    const [alice, bob, carol] = members as [SetupMember, SetupMember, SetupMember];
    const a = await connect(mesh.id, alice);
    const b = await connect(mesh.id, bob);
    await connect(mesh.id, carol);
    b.on("message", (m) => {
      const q = m.payload as { q: number };
      void b.reply(m, { a: q.q * 2 });
    });
    const answer = await a.request(bob.pubkey, { q: 21 }, { timeoutMs: 10_000 });
    expect(answer).toMatchObject({ senderPubkey: bob.pubkey, targetSpec: alice.pubkey, encrypted: true, payload: { a: 42 } });
    expect(answer.replyTo).toMatch(/^[0-9a-f-]{36}$/);
    const twice = await Promise.all([a.request(bob.pubkey, { q: 1 }), a.request(bob.pubkey, { q: 2 })]);
    expect(twice.map((m) => m.payload)).toEqual([{ a: 2 }, { a: 4 }]);
    // carol never answers.
    await expect(a.request(carol.pubkey, { q: 1 }, { timeoutMs: 300 })).rejects.toMatchObject({ code: "timeout" });
  });

  test("a request whose reply does not open fails with that reply's error at once, not with a timeout", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const a = await connect(mesh.id, alice);
    const got = collect(a);
    const responder = await rawPeer(mesh.id, bob);
    const asking = a.request(bob.pubkey, { q: 1 }, { timeoutMs: 60_000 }).then(
      () => null,
      (error: unknown) => error,
    );
    const [question] = await responder.waitForPushes(1, 10_000);
    const forged = await responder.send(alice.pubkey, {
      replyTo: String(question!.messageId),
      nonce: `x1:${Buffer.alloc(24).toString("base64")}`,
      ciphertext: Buffer.alloc(40).toString("base64"),
    });
    const failure = await within(asking, 10_000, "the request's end");
    expect(failure).toBeInstanceOf(SwitchboardError);
    expect(failure).toMatchObject({ code: "decrypt_failed", message: expect.stringContaining(String(forged.messageId)) });
    // Reported as every push that does not open is, too.
    expect(got.errors.map((e) => e.code)).toEqual(["decrypt_failed"]);
  });

  test("a request made again with its id after an undecided first is the same message: delivered once, the retry gets its reply", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const frames: RawFrame[] = [];
    const a = await connect(mesh.id, alice, { WebSocket: recordingWebSocket(frames) });
    // Written, but the broker is stopped: the request times out with no verdict (bob is offline anyway).
    const failure = await failureWhileStopped(broker.process.pid, () => a.request(bob.pubkey, { q: "once" }, { id: "req-1", timeoutMs: 300 }));
    expect(failure).toMatchObject({ code: "timeout" });
    // Frames are answered in order: by the pong, the broker has handled the first send.
    await pingAnswered(a);
    const retry = a.request(bob.pubkey, { q: "once" }, { id: "req-1", timeoutMs: 20_000 });
    const b = await connect(mesh.id, bob);
    const asked: string[] = [];
    b.on("message", (m) => {
      asked.push(m.messageId);
      if ((m.payload as { q?: string }).q !== undefined) void b.reply(m, { a: "done" });
    });
    const answer = await retry;
    const requested = answer.replyTo ?? "(no replyTo)";
    // A later message from the same sender comes after any second copy of the request.
    const marker = await a.send(bob.pubkey, { marker: true });
    await waitUntil(() => asked.includes(marker.messageId), 10_000, "the marker");
    const acks = frames.filter((f) => f.type === "ack" && f.id === "req-1").map((f) => [f.messageId, f.duplicate === true]);
    expect({ sendId: (failure as SwitchboardError).sendId, payload: answer.payload, acks, asked }).toEqual({
      sendId: "req-1",
      payload: { a: "done" },
      // The first send's late ack (its caller gone), then the retry's: the same message.
      acks: [
        [requested, false],
        [requested, true],
      ],
      asked: [requested, marker.messageId],
    });
  });

  test("a presence renewal whose socket drops between its subscribe's ack and its pong reports no presence that stayed as left and joined again", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const control = controllableWebSocket();
    const a = await connect(mesh.id, alice, { WebSocket: control.WebSocket });
    const b = await connect(mesh.id, bob);
    await a.subscribePresence();
    await waitUntil(() => a.presences.some((p) => p.presenceId === b.presenceId), 5000, "bob's presence");
    const events: PresenceEvent[] = [];
    a.on("presence", (e) => events.push(e));
    let reconnects = 0;
    a.on("reconnect", () => reconnects++);
    // The renewal after this drop loses its socket as its subscribe is acked:
    // its ping goes out on the next socket, behind that one's own renewal.
    control.dropAfter = (text) => text.includes('"subscribed":["presence"]');
    control.sockets.at(-1)!.close(3000, "test drop");
    await waitUntil(() => reconnects === 2, 20_000, "two reconnects");
    // The last renewal sends its ping once its subscribe is acked: it is over
    // when the presences alice had before are gone from the list.
    const expected = [a.presenceId, b.presenceId].sort();
    const listed = () => a.presences.map((p) => p.presenceId).sort();
    await waitUntil(() => Bun.deepEquals(listed(), expected), 10_000, "the last renewal over");
    expect(control.dropAfter).toBeNull();
    expect(events.filter((e) => e.pubkey === bob.pubkey)).toEqual([]);
  });

  test("a client closed while its presence renewal after a reconnect is under way emits no error after its close", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const control = controllableWebSocket();
    const a = await connect(mesh.id, members[0]!, { WebSocket: control.WebSocket });
    await a.subscribePresence();
    const got = collect(a);
    const events: string[] = [];
    a.on("close", (c) => events.push(`close ${c.willReconnect}`));
    a.on("error", (e) => events.push(`error ${e.code}`));
    // Closed as soon as the new socket's hello is accepted: the renewal's subscribe is unanswered then.
    a.on("reconnect", () => void a.close());
    control.sockets.at(-1)?.close();
    await waitUntil(() => a.connectionState === "closed", 10_000, "the close");
    await a.close();
    await Bun.sleep(50);
    expect(got.errors).toEqual([]);
    expect(events).toEqual(["close true", "close false"]);
  });

  test("a client closed by a connectionState listener as a reconnect opens tells of no open or reconnect after it", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const control = controllableWebSocket();
    const a = await connect(mesh.id, members[0]!, { WebSocket: control.WebSocket });
    const events: string[] = [];
    const closing: Array<Promise<void>> = [];
    a.on("connectionState", (state) => {
      events.push(`state ${state}`);
      if (state === "open") closing.push(a.close());
    });
    a.on("open", () => events.push("open"));
    a.on("reconnect", () => events.push("reconnect"));
    a.on("close", () => events.push("close"));
    control.sockets.at(-1)?.close();
    await waitUntil(() => closing.length > 0 || undefined, 10_000, "the reconnect");
    await Promise.all(closing);
    expect(events).toEqual(["close", "state reconnecting", "state open", "state closed", "close"]);
  });

  test("in a close listener of a socket that dropped the client is not connected: a typing said there is not written after the reconnect", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const control = controllableWebSocket();
    const a = await connect(mesh.id, members[0]!, { WebSocket: control.WebSocket });
    await a.join("room");
    const seen: Array<{ connected: boolean; state: ConnectionState }> = [];
    a.on("close", (c) => {
      if (!c.willReconnect) return;
      seen.push({ connected: a.connected, state: a.connectionState });
      void a.setTyping("room");
    });
    let reconnected = false;
    a.on("reconnect", () => (reconnected = true));
    const before = control.sent.length;
    control.sockets.at(-1)?.close();
    await waitUntil(() => reconnected, 10_000, "the reconnect");
    await a.ping();
    expect(seen).toEqual([{ connected: false, state: "reconnecting" }]);
    expect(control.sent.slice(before).filter((f) => f.type === "send")).toEqual([]);
  });

  test("a push delivered twice (ack later than the lease) reaches the application once", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob", "prober", "probe"] });
    const [alice, bob, proberMember, probeMember] = members as [SetupMember, SetupMember, SetupMember, SetupMember];
    const frames: RawFrame[] = [];
    const acked: string[] = [];
    const a = await connect(mesh.id, alice);
    // The ack waits far longer than the 1 s lease and the sweep after it, on a busy machine too: the
    // hello_ack reaches the SDK without the lease, as from a broker that does not tell it, or the SDK
    // would send its acks within a third of it.
    const control = recordingControllable(frames, acked);
    control.hideLease = true;
    const b = await connect(mesh.id, bob, { WebSocket: control.WebSocket, ackDelayMs: 8000 });
    const got = collect(b);
    const sent = await a.send(bob.pubkey, "once");
    await waitUntil(() => pushesOf(frames, sent.messageId).length >= 2, 15_000, "a redelivery");
    await waitUntil(() => acked.includes(sent.messageId), 15_000, "the batched ack");
    // After the batched ack went out, nothing more arrives: a push in flight at the ack is in by a
    // probe's second push, and none may follow for a whole lease more, up to its third.
    const probe = await sendLeaseProbe(await rawPeer(mesh.id, proberMember), await rawPeer(mesh.id, probeMember));
    await probe(2);
    const count = pushesOf(frames, sent.messageId).length;
    await probe(3);
    expect(pushesOf(frames, sent.messageId)).toHaveLength(count);
    expect(got.messages.map((m) => m.payload)).toEqual(["once"]);
  });

  test("pushes that arrive before the application listens for messages wait for its first listener, unacknowledged till then", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const a = await connect(mesh.id, alice);
    for (const text of ["one", "two", "three"]) await a.send(bob.pubkey, text);
    const frames: RawFrame[] = [];
    const sentByB: RawFrame[] = [];
    const b = await connect(mesh.id, bob, { WebSocket: recordingWebSocket(frames, sentByB), ackDelayMs: 0 });
    // Something awaited between connect() and on("message").
    await waitUntil(() => frames.filter((f) => f.type === "push").length >= 3, 10_000, "the queued pushes");
    await b.ping();
    expect(sentByB.filter((f) => f.type === "client_ack")).toEqual([]);
    const got: unknown[] = [];
    b.on("message", (m) => got.push(m.payload));
    await waitUntil(() => got.length >= 3, 10_000, "the messages handed over");
    const acked = () => new Set(sentByB.flatMap((f) => (f.type === "client_ack" ? (f.messageIds as string[]) : [])));
    await waitUntil(() => acked().size >= 3, 10_000, "their acks");
    expect(got).toEqual(["one", "two", "three"]);
  });

  test("a message that arrives while only a request() waits (no message listener) is not its reply: it waits, unacked, for the application's listener", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const b = await connect(mesh.id, bob);
    b.on("message", (m) => {
      if ((m.payload as { q?: number }).q === undefined) return;
      // Another message first: per sender order it reaches alice while her request waits.
      void b.send(alice.pubkey, "unrelated").then(() => b.reply(m, { a: 1 }));
    });
    const a = await connect(mesh.id, alice);
    // Alice listens for nothing but the request's reply.
    const answer = await a.request(bob.pubkey, { q: 1 }, { timeoutMs: 10_000 });
    expect(answer.payload).toEqual({ a: 1 });
    const got: unknown[] = [];
    a.on("message", (m) => got.push(m.payload));
    await b.send(alice.pubkey, "marker");
    await waitUntil(() => got.includes("marker"), 10_000, "the marker");
    expect(got).toEqual(["unrelated", "marker"]);
  });

  test("a message that opens waits for a message listener, not for an unreadable one: an application that listens for unreadable first loses none", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const frames: RawFrame[] = [];
    const sentByB: RawFrame[] = [];
    const b = await connect(mesh.id, bob, { WebSocket: recordingWebSocket(frames, sentByB), ackDelayMs: 0 });
    const unreadable: string[] = [];
    b.on("unreadable", (u) => unreadable.push(u.messageId));
    const a = await connect(mesh.id, alice);
    const sent = await a.send(bob.pubkey, "readable");
    // Something awaited before on("message"): the push comes meanwhile.
    await waitUntil(() => pushesOf(frames, sent.messageId).length >= 1, 10_000, "the push");
    await b.ping();
    expect(sentByB.filter((f) => f.type === "client_ack")).toEqual([]);
    const got: unknown[] = [];
    b.on("message", (m) => got.push(m.payload));
    await waitUntil(() => got.length >= 1, 10_000, "the message handed over");
    expect({ got, unreadable }).toEqual({ got: ["readable"], unreadable: [] });
  });

  test("a listener removed by another listener of the same event is not called for the event under way", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const b = await connect(mesh.id, bob);
    const heard: string[] = [];
    let offSecond = () => {};
    b.on("message", (m) => {
      heard.push(`first ${String(m.payload)}`);
      offSecond();
    });
    offSecond = b.on("message", (m) => heard.push(`second ${String(m.payload)}`));
    const a = await connect(mesh.id, alice);
    await a.send(bob.pubkey, "one");
    await a.send(bob.pubkey, "two");
    await waitUntil(() => heard.includes("first two"), 10_000, "both messages");
    expect(heard).toEqual(["first one", "first two"]);
  });

  test("a send retried with the same id is answered duplicate and delivered once", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const a = await connect(mesh.id, alice);
    const got = collect(await connect(mesh.id, bob));
    const first = await a.send(bob.pubkey, "one", { id: "retry-1" });
    const again = await a.send(bob.pubkey, "one", { id: "retry-1" });
    expect(first).toMatchObject({ id: "retry-1", duplicate: false, recipients: 1 });
    expect(again).toMatchObject({ id: "retry-1", messageId: first.messageId, duplicate: true });
    // A later message from the same sender comes after any second copy of the first.
    const later = await a.send(bob.pubkey, "two");
    await waitUntil(() => got.messages.length >= 2, 10_000, "both messages");
    expect(got.messages.map((m) => m.messageId)).toEqual([first.messageId, later.messageId]);
  });

  test("status, channels, peers and ping", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const a = await connect(mesh.id, alice, { sessionId: "sess-a" });
    const statuses: string[] = [];
    a.on("status", (s) => statuses.push(`${s.status}/${s.statusSource}`));
    expect(await a.setStatus("working")).toEqual({ status: "working", statusSource: "manual" });
    expect(statuses).toEqual(["working/manual"]);
    expect(a.presenceId).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.memberId).toBe(alice.id);
    expect(a.publicKey).toBe(alice.pubkey);
    expect(Math.abs((await a.ping()) - Date.now())).toBeLessThan(60_000);
    await connect(mesh.id, bob);
    const list = await a.listPeers();
    expect(list.map((p) => p.pubkey).sort()).toEqual([alice.pubkey, bob.pubkey].sort());
    expect(list.find((p) => p.pubkey === alice.pubkey)!.presences).toEqual([
      { sessionId: "sess-a", status: "working", statusSource: "manual", connectedAt: expect.any(String) },
    ]);
    await a.join("#dev");
    await a.leave("#dev");
  });

  test("watchTranscriptStatus reports the transcript's status to the broker as jsonl", async () => {
    const home = mkdtempSync(join(tmpdir(), "switchboard-home-"));
    try {
      const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
      const cwd = "/tmp/project-x";
      const a = await connect(mesh.id, members[0]!, { sessionId: "watched", cwd });
      const dir = transcriptDir(cwd, home);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "t.jsonl"), `${JSON.stringify({ type: "user", message: { role: "user" } })}\n`);
      const stop = watchTranscriptStatus(a, cwd, { home, intervalMs: 50 });
      try {
        const seen = async () => (await a.listPeers())[0]?.presences[0];
        let presence = await seen();
        for (let i = 0; i < 100 && presence?.status !== "working"; i++) {
          await Bun.sleep(50);
          presence = await seen();
        }
        expect(presence).toMatchObject({ status: "working", statusSource: "jsonl" });
      } finally {
        stop();
      }
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test("a program that closes its client lets the process exit though its transcript watcher was never stopped", async () => {
    const home = mkdtempSync(join(tmpdir(), "switchboard-home-"));
    try {
      const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
      const cwd = "/tmp/project-closed";
      const dir = transcriptDir(cwd, home);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "t.jsonl"), `${JSON.stringify({ type: "user", message: { role: "user" } })}\n`);
      const env = { ...process.env, BROKER_URL: broker.wsUrl, MESH_ID: mesh.id, SECRET_KEY: members[0]!.identity.secretKey, WATCHED_CWD: cwd, WATCHED_HOME: home };
      const child = Bun.spawn(["bun", join(import.meta.dir, "fixtures", "watched-then-closed.ts")], { env, stdout: "pipe", stderr: "inherit" });
      try {
        await waitUntil(() => child.exitCode !== null, 30_000, "the process to exit after close()");
        expect(child.exitCode).toBe(0);
        expect(await new Response(child.stdout).text()).toBe("closed\n");
      } finally {
        child.kill();
      }
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe("connect and final closes", () => {
  test("a refused hello rejects connect with the broker's code", async () => {
    const { mesh } = await setupMesh(broker.admin, { members: ["alice"] });
    const stranger = await newIdentity();
    const attempt = SwitchboardClient.connect({ url: broker.url, meshId: mesh.id, secretKey: stranger.secretKey });
    await expect(attempt).rejects.toBeInstanceOf(SwitchboardError);
    await expect(attempt).rejects.toMatchObject({ code: "unauthorized" });
  });

  test("an unreachable broker rejects with unreachable", async () => {
    const me = await newIdentity();
    await expect(
      SwitchboardClient.connect({ url: "ws://127.0.0.1:1/ws", meshId: "m", secretKey: me.secretKey }),
    ).rejects.toMatchObject({ code: "unreachable", message: "cannot connect to ws://127.0.0.1:1/ws (1006)" });
  });

  test("a ws:// URL without the /ws path is refused as unreachable, saying where the broker takes WebSockets", async () => {
    const me = await newIdentity();
    const root = broker.wsUrl.replace(/\/ws$/, "");
    await expect(SwitchboardClient.connect({ url: root, meshId: "m", secretKey: me.secretKey })).rejects.toMatchObject({
      code: "unreachable",
      message: expect.stringMatching(/; the broker takes WebSockets on \/ws, and this URL's path is \/$/),
    });
  });

  test("start() with reconnect { maxAttempts: 0 } makes its one attempt, as with reconnect: false, and does not retry a failed one", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const [alice] = members as [SetupMember];
    // It made none: the client was closed before start() resolved, with no event to say so.
    const client = await SwitchboardClient.start({ url: broker.url, meshId: mesh.id, secretKey: alice.identity.secretKey, reconnect: { maxAttempts: 0 } });
    try {
      await waitUntil(() => client.connected || undefined, 10_000, "the client's one attempt to connect");
    } finally {
      await client.close();
    }
    const failures: Array<{ code: string; willRetry: boolean }> = [];
    const away = await SwitchboardClient.start({ url: "ws://127.0.0.1:1/ws", meshId: mesh.id, secretKey: alice.identity.secretKey, reconnect: { maxAttempts: 0 } });
    away.on("connectFailed", (f) => failures.push({ code: f.error.code, willRetry: f.willRetry }));
    await waitUntil(() => away.connectionState === "closed" || undefined, 10_000, "the one failed attempt");
    expect(failures).toEqual([{ code: "unreachable", willRetry: false }]);
  });

  test("start() whose attempts all fail stays connecting until it gives up: it never was connected, so it is not reconnecting", async () => {
    const { secretKey } = await generateKeypair();
    const away = await SwitchboardClient.start({ url: "ws://127.0.0.1:1/ws", meshId: "m", secretKey, reconnect: { minDelayMs: 1, maxDelayMs: 5, maxAttempts: 3 } });
    const states: string[] = [];
    let failed = 0;
    away.on("connectionState", (state) => states.push(state));
    away.on("connectFailed", () => failed++);
    await waitUntil(() => away.connectionState === "closed" || undefined, 10_000, "three failed attempts");
    expect({ failed, states }).toEqual({ failed: 3, states: ["closed"] });
  });

  test("an http(s) URL already naming /ws, with a trailing slash, is the broker's /ws: connect opens it", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const [alice] = members as [SetupMember];
    for (const url of [`${broker.url}/ws/`, `${broker.url}/ws//`]) {
      const client = await SwitchboardClient.connect({ url, meshId: mesh.id, secretKey: alice.identity.secretKey, reconnect: false });
      expect(client.connected).toBe(true);
      await client.close();
    }
  });

  test("a dropped socket reconnects with the same session; a refused hello on reconnect is final", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const control = controllableWebSocket();
    const a = await connect(mesh.id, alice, { WebSocket: control.WebSocket, sessionId: "drop-me" });
    const got = collect(a);
    const gotB = collect(await connect(mesh.id, bob));
    const firstPresence = a.presenceId;

    control.sockets.at(-1)!.close(3000, "test drop");
    await waitUntil(() => got.reconnects >= 1, 10_000, "the reconnect");
    expect(got.closes[0]).toMatchObject({ code: 3000, willReconnect: true });
    expect(a.presenceId).not.toBe(firstPresence);
    await a.send(bob.pubkey, "after the drop");
    await waitUntil(() => gotB.messages.length >= 1, 10_000, "bob's message");
    const sessions = (await broker.admin.peers(mesh.id)).filter((p) => p.pubkey === alice.pubkey);
    expect(sessions.map((p) => p.sessionId)).toEqual(["drop-me"]);

    control.spoilHello = true;
    const hellosBefore = control.hellos;
    control.sockets.at(-1)!.close(3000, "test drop");
    await waitUntil(() => got.closes.some((c) => !c.willReconnect), 10_000, "the final close");
    expect(got.errors.map((e) => e.code)).toEqual(["bad_signature"]);
    // Closed for good, not reconnecting (a reconnecting client would hold the ping for later).
    await expect(a.ping()).rejects.toMatchObject({ code: "closed" });
    expect(control.hellos - hellosBefore).toBe(1);
  });

  test("a send written on a socket that dropped, whose reconnect is refused for good, names its id: the broker may have stored it", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const control = controllableWebSocket();
    const a = await connect(mesh.id, alice, { WebSocket: control.WebSocket });
    const sending = a.send(bob.pubkey, "in flight").then(
      () => null,
      (error: unknown) => error,
    );
    // Written, then the socket drops before its answer can come; the reconnect's hello is refused.
    expect(control.sent.filter((f) => f.type === "send")).toHaveLength(1);
    control.spoilHello = true;
    control.sockets.at(-1)!.close(3000, "test drop");
    const { code, sendId } = (await sending) as SwitchboardError;
    expect({ code, sendId: typeof sendId }).toEqual({ code: "bad_signature", sendId: "string" });
  });

  test("hellos refused for a clock far ahead do not hold later ones ahead: once the clock is right the client reconnects", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const control = controllableWebSocket();
    const a = await connect(mesh.id, members[0]!, { WebSocket: control.WebSocket, heartbeatMs: 0 });
    const realNow = Date.now.bind(Date);
    let offset = 0;
    const clock = spyOn(Date, "now").mockImplementation(() => realNow() + offset);
    try {
      // Two hours ahead: every hello is refused timestamp_skew (no retry can fix the clock).
      offset = 2 * 3600 * 1000;
      const hellosBefore = control.hellos;
      control.sockets.at(-1)!.close(3000, "test drop");
      await waitUntil(() => control.hellos >= hellosBefore + 3, 10_000, "refused reconnects");
      expect(a.connected).toBe(false);
      // The clock is set right: the next hello must carry the right time, not one after the refused ones.
      offset = 0;
      await waitUntil(() => a.connected, 10_000, "the reconnect once the clock is right");
    } finally {
      clock.mockRestore();
    }
  });

  test("after a reconnect, queued calls go out before one a connectionState listener makes, each once", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const control = controllableWebSocket();
    const a = await connect(mesh.id, alice, { WebSocket: control.WebSocket });
    const gotB = collect(await connect(mesh.id, bob));
    const sends: Array<Promise<unknown>> = [];
    a.on("connectionState", (state) => {
      if (state === "open" && sends.length === 1) sends.push(a.send(bob.pubkey, "second"));
    });
    // Made while the socket is down, so it waits in the outbox for the next one.
    const off = a.on("close", () => {
      off();
      sends.push(a.send(bob.pubkey, "first"));
    });
    control.sockets.at(-1)!.close(3000, "test drop");
    await waitUntil(() => sends.length === 2, 10_000, "the reconnect");
    await Promise.all(sends);
    await waitUntil(() => gotB.messages.length >= 2, 10_000, "bob's messages");
    const written = control.sent.filter((f) => f.type === "send").map((f) => f.ciphertext);
    expect(written).toHaveLength(2);
    expect(gotB.messages.map((m) => m.payload)).toEqual(["first", "second"]);
  });

  test("a send over the limit the broker told in its hello_ack rejects with too_large naming it, and is never written", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const control = controllableWebSocket();
    const a = await connect(mesh.id, alice, { WebSocket: control.WebSocket });
    const got = collect(a);
    const presence = a.presenceId;
    await expect(a.send(bob.pubkey, "x".repeat(70_000))).rejects.toMatchObject({
      code: "too_large",
      message: expect.stringContaining("limit of 65536"),
    });
    // The socket stays: the next, smaller send goes out on it at once.
    expect((await a.send(bob.pubkey, "shorter")).recipients).toBe(1);
    expect(a.presenceId).toBe(presence);
    expect(got.closes).toEqual([]);
    expect(control.sent.filter((f) => f.type === "send")).toHaveLength(1);
    await a.close();
  });

  test("a request too large for a broker that does not tell its limit (close 1009) rejects with too_large and is not written again", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const control = controllableWebSocket();
    control.hideFrameLimit = true;
    const a = await connect(mesh.id, members[0]!, { WebSocket: control.WebSocket });
    const got = collect(a);
    // Over the broker's MAX_MESSAGE_BYTES (64 KB).
    await expect(a.join(`#${"x".repeat(70_000)}`)).rejects.toMatchObject({ code: "too_large" });
    expect(got.closes.map((c) => c.code)).toEqual([1009]);
    expect(await a.ping()).toBeGreaterThan(0);
    expect(control.sent.filter((f) => f.type === "join")).toHaveLength(1);
    expect(control.hellos).toBe(2);
  });

  test("a socket closed soon after every hello is reconnected with a growing delay, not the shortest one each time", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const control = controllableWebSocket();
    const a = await connect(mesh.id, members[0]!, { WebSocket: control.WebSocket, reconnect: { minDelayMs: 20, maxDelayMs: 200 } });
    // The attempt number each wait is drawn for: its ceiling doubles with it.
    const delays = spyOn(backoff, "backoffDelay");
    try {
      a.on("open", () => control.sockets.at(-1)!.close(3000, "closed at once"));
      control.sockets.at(-1)!.close(3000, "closed at once");
      await waitUntil(() => delays.mock.calls.length >= 5, 20_000, "five reconnects");
      expect(delays.mock.calls.slice(0, 5).map(([attempt]) => attempt)).toEqual([0, 1, 2, 3, 4]);
    } finally {
      delays.mockRestore();
      await a.close();
    }
  });

  test("revocation (4002) ends the client: no reconnect, later sends fail with closed", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const a = await connect(mesh.id, alice);
    const got = collect(a);
    await broker.admin.revokeMember(mesh.id, alice.id);
    await waitUntil(() => got.closes.length >= 1, 10_000, "the close");
    expect(got.closes[0]).toMatchObject({ code: 4002, willReconnect: false });
    // Closed for good, not reconnecting (a reconnecting client would hold the send for later).
    await expect(a.send(bob.pubkey, "x")).rejects.toMatchObject({ code: "closed" });
    expect(got.reconnects).toBe(0);
  });

  test("another connection with the same session (4000) ends the old client; reconnects keep the session", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const first = await connect(mesh.id, members[0]!, { sessionId: "shared-session" });
    const got = collect(first);
    const second = await connect(mesh.id, members[0]!, { sessionId: "shared-session" });
    await waitUntil(() => got.closes.length >= 1, 10_000, "the replaced close");
    expect(got.closes[0]).toMatchObject({ code: 4000, willReconnect: false });
    // Closed for good, not reconnecting (a reconnecting client would hold the ping for later).
    await expect(first.ping()).rejects.toMatchObject({ code: "closed" });
    expect(got.reconnects).toBe(0);
    const peersNow = await broker.admin.peers(mesh.id);
    expect(peersNow).toHaveLength(1);
    expect(await second.ping()).toBeGreaterThan(0);
  });

  test("a send whose socket is replaced (4000) before its answer names its id: sent again with it, the broker stores it once", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    // The broker's answers to sends never reach the SDK: the send is stored, its caller not told.
    const NoSendAcks = noSendAcksWebSocket();
    const first = await connect(mesh.id, alice, { sessionId: "taken-over", WebSocket: NoSendAcks });
    const sending = first.send(bob.pubkey, "once").then(
      () => null,
      (error: unknown) => error,
    );
    // Frames are answered in order: by the pong, the send is stored.
    await first.ping();
    const second = await connect(mesh.id, alice, { sessionId: "taken-over" });
    const failure = (await sending) as SwitchboardError;
    const { code, sendId } = failure;
    expect({ code, sendId: typeof sendId }).toEqual({ code: "replaced", sendId: "string" });
    const again = await second.send(bob.pubkey, "once", { id: sendId! });
    expect(again.duplicate).toBe(true);
  });

  test("a request whose send is unanswered when the client closes names its id: made again with it, it is the same message and gets its reply", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const first = await connect(mesh.id, alice, { WebSocket: noSendAcksWebSocket() });
    const asking = first.request(bob.pubkey, { q: 1 }, { timeoutMs: 20_000 }).then(
      () => null,
      (error: unknown) => error,
    );
    // Frames are answered in order: by the pong, the request's send is stored.
    await first.ping();
    await first.close();
    const { code, sendId } = (await asking) as SwitchboardError;
    expect({ code, sendId: typeof sendId }).toEqual({ code: "closed", sendId: "string" });
    const b = await connect(mesh.id, bob);
    const asked: string[] = [];
    b.on("message", (m) => {
      asked.push(m.messageId);
      void b.reply(m, { a: 1 });
    });
    const again = await connect(mesh.id, alice);
    const answer = await again.request(bob.pubkey, { q: 1 }, { id: sendId!, timeoutMs: 20_000 });
    expect(answer.payload).toEqual({ a: 1 });
    expect(asked).toEqual([answer.replyTo ?? "(no replyTo)"]);
  });

  test("a client without a sessionId, run inside a Claude Code session, takes a session of its own: the session's presence stays", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const alice = members[0]!;
    // Standing in for the session's MCP server: alice's presence under Claude Code's session id.
    const session = await connect(mesh.id, alice, { sessionId: "claude-session-1" });
    const got = collect(session);
    const before = process.env.CLAUDE_CODE_SESSION_ID;
    process.env.CLAUDE_CODE_SESSION_ID = "claude-session-1";
    try {
      await connect(mesh.id, alice);
    } finally {
      if (before === undefined) delete process.env.CLAUDE_CODE_SESSION_ID;
      else process.env.CLAUDE_CODE_SESSION_ID = before;
    }
    const presences = (await broker.admin.peers(mesh.id)).filter((p) => p.pubkey === alice.pubkey);
    expect(presences).toHaveLength(2);
    expect(presences.map((p) => p.sessionId)).toContain("claude-session-1");
    expect(await session.ping()).toBeGreaterThan(0);
    expect(got.closes).toEqual([]);
  });

  test("close() called by a close listener while a reconnect is due ends the client: no reconnect, one close event of its own, pending calls fail closed", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const control = controllableWebSocket();
    const a = await connect(mesh.id, alice, { WebSocket: control.WebSocket });
    const got = collect(a);
    const states: ConnectionState[] = [];
    a.on("connectionState", (state) => states.push(state));
    let pending: Promise<unknown> | undefined;
    let closing: Promise<void> | undefined;
    a.on("close", (info) => {
      if (!info.willReconnect || closing) return;
      pending = a.send(bob.pubkey, "made as the socket dropped").catch((error: unknown) => error);
      closing = a.close();
    });
    control.sockets.at(-1)!.close(3000, "test drop");
    await waitUntil(() => closing !== undefined, 10_000, "close() from the listener");
    await closing;
    expect(got.closes).toEqual([
      { code: 3000, reason: "test drop", willReconnect: true },
      { code: 1000, reason: "client closed", willReconnect: false },
    ]);
    expect(await pending).toMatchObject({ code: "closed" });
    // Closed for good: never back to reconnecting (where a call would wait for a socket that never comes).
    expect(states).toEqual(["closed"]);
    await expect(a.ping()).rejects.toMatchObject({ code: "closed" });
    expect(control.sockets).toHaveLength(1);
  });

  test("close() called by a listener of the reconnecting state starts no reconnect wait (whose timer would hold the process)", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const control = controllableWebSocket();
    const a = await connect(mesh.id, members[0]!, { WebSocket: control.WebSocket });
    let closing: Promise<void> | undefined;
    a.on("connectionState", (state) => {
      if (state === "reconnecting") closing ??= a.close();
    });
    const delays = spyOn(backoff, "backoffDelay");
    try {
      control.sockets.at(-1)!.close(3000, "test drop");
      await waitUntil(() => closing !== undefined, 10_000, "close() from the listener");
      await closing;
      expect(delays).not.toHaveBeenCalled();
    } finally {
      delays.mockRestore();
    }
    expect(a.connectionState).toBe("closed");
    expect(control.sockets).toHaveLength(1);
  });

  test("close() called by the close listener of a replaced client (4000) adds no close event; what was pending fails with replaced", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const first = await connect(mesh.id, alice, { sessionId: "taken-over" });
    await connect(mesh.id, bob);
    const got = collect(first);
    first.on("close", () => void first.close());
    // Bob never answers: the request is still waiting when the session is taken over.
    const waiting = first.request(bob.pubkey, { q: "anyone there?" }).catch((error: unknown) => error);
    await connect(mesh.id, alice, { sessionId: "taken-over" });
    await waitUntil(() => first.connectionState === "closed", 10_000, "the replaced client closed");
    await first.close();
    expect(got.closes).toEqual([{ code: 4000, reason: expect.any(String), willReconnect: false }]);
    expect(await waiting).toMatchObject({ code: "replaced" });
  });

  test("close() called by a listener of the final error after a refused reconnect adds no close event; what was pending fails with the refusal's code", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
    const control = controllableWebSocket();
    const a = await connect(mesh.id, members[0]!, { WebSocket: control.WebSocket });
    const got = collect(a);
    let pending: Promise<unknown> | undefined;
    a.on("close", (info) => {
      if (info.willReconnect) pending ??= a.ping().catch((error: unknown) => error);
    });
    a.on("error", () => void a.close());
    control.spoilHello = true;
    control.sockets.at(-1)!.close(3000, "test drop");
    await waitUntil(() => a.connectionState === "closed", 10_000, "the refused reconnect");
    await a.close();
    expect(got.closes).toEqual([
      { code: 3000, reason: "test drop", willReconnect: true },
      { code: 1006, reason: "bad_signature", willReconnect: false },
    ]);
    expect(await pending).toMatchObject({ code: "bad_signature" });
  });
});

describe("a broker whose limit shrinks across a reconnect", () => {
  test("a send written on the socket that dropped, too large for the next one, names its id: the broker may have stored it", async () => {
    let sockets = 0;
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (req, srv) => (srv.upgrade(req, { data: { n: ++sockets } }) ? undefined : new Response("WebSocket only", { status: 426 })),
      websocket: {
        data: {} as { n: number },
        message(ws, data) {
          const frame = JSON.parse(String(data)) as RawFrame;
          if (frame.type === "hello") {
            const maxMessageBytes = ws.data.n === 1 ? 65_536 : 64;
            ws.send(JSON.stringify({ type: "hello_ack", presenceId: crypto.randomUUID(), memberId: "m1", meshId: "m", displayName: "x", status: "idle", serverTime: Date.now(), maxMessageBytes }));
          } else if (frame.type === "send") {
            // The first socket takes the send and drops before its answer.
            ws.close(1011, "gone");
          }
        },
      },
    });
    try {
      const me = await newIdentity();
      const client = await SwitchboardClient.connect({
        url: `ws://127.0.0.1:${server.port}/ws`,
        meshId: "m",
        secretKey: me.secretKey,
        reconnect: { minDelayMs: 10, maxDelayMs: 20 },
      });
      clients.adopt(client);
      const id = crypto.randomUUID();
      const failure = await within(client.send("*", "a message longer than the next socket takes", { id }).catch((error: unknown) => error), 10_000, "the send's end");
      expect(failure).toMatchObject({ code: "too_large", sendId: id });
      expect(sockets).toBe(2);
      // One never written is refused at once, with no id: nothing was stored.
      const fresh = await client.send("*", "a message longer than the next socket takes").catch((error: unknown) => error);
      expect(fresh).toMatchObject({ code: "too_large" });
      expect((fresh as SwitchboardError).sendId).toBeUndefined();
    } finally {
      await clients.closeAll();
      await server.stop(true);
    }
  });
});

describe("a broker newer than the SDK", () => {
  test("a hello answer the SDK cannot read fails the connect with protocol at once, naming what came, not a timeout", async () => {
    const answers: RawFrame[] = [
      { type: "hello_ack", presenceId: "p", memberId: "m", meshId: "m", displayName: "fake", status: "away", serverTime: Date.now() },
      { type: "error", code: "from_a_newer_broker", message: "refused for a reason this SDK cannot name" },
    ];
    for (const [i, helloAnswer] of answers.entries()) {
      const fake = fakeBroker(() => null, () => helloAnswer);
      try {
        const me = await newIdentity();
        const refused = await SwitchboardClient.connect({ url: fake.url, meshId: "m", secretKey: me.secretKey, reconnect: false, connectTimeoutMs: 5000 }).then(
          async (client) => {
            await client.close();
            return null;
          },
          (error: unknown) => error,
        );
        const what = i === 0 ? "type hello_ack" : "type error, code from_a_newer_broker";
        // Waited out, the connect would fail with timeout (connectTimeoutMs), not protocol.
        expect(refused).toMatchObject({ code: "protocol", message: `the broker answered the hello with a frame the SDK cannot read (${what})` });
      } finally {
        await fake.stop();
      }
    }
  });

  test("an answer the SDK cannot read (an error code it does not know) fails its call with protocol, and is reported; a send's names its id", async () => {
    let pings = 0;
    const fake = fakeBroker((frame) => {
      // A send's ack in a shape this SDK does not know: stored, most likely.
      if (frame.type === "send") return { type: "ack", reqId: frame.reqId, id: frame.id, messageId: 42, queued: true, recipients: 1 };
      if (frame.type !== "ping") return null;
      pings++;
      return pings === 1
        ? { type: "error", reqId: frame.reqId, code: "from_a_newer_broker", message: "refused for a reason this SDK cannot name" }
        : { type: "pong", reqId: frame.reqId, serverTime: Date.now() };
    });
    try {
      const me = await newIdentity();
      const client = await SwitchboardClient.connect({ url: fake.url, meshId: "m", secretKey: me.secretKey, reconnect: false });
      clients.adopt(client);
      const got = collect(client);
      const first = client.ping().then(
        () => "answered",
        (error: unknown) => error,
      );
      // Frames are handled in order: once the second ping is answered, the first one's answer was handled.
      expect(await client.ping()).toBeGreaterThan(0);
      expect(await Promise.race([first, Promise.resolve("still pending")])).toMatchObject({ code: "protocol" });
      expect(got.errors.map((e) => e.code)).toEqual(["protocol"]);
      // Whether the broker stored it is unknown: the error names the id to send it again with.
      const id = crypto.randomUUID();
      expect(await client.send("*", "hi", { id }).catch((error: unknown) => error)).toMatchObject({ code: "protocol", sendId: id });
    } finally {
      await clients.closeAll();
      await fake.stop();
    }
  });
});
