// PROTOCOL.md §1 "hello": admitting a peer and every way of refusing one,
// against a real broker process over real sockets.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  backendKind,
  buildHello,
  newIdentity,
  parsePrometheusText,
  PeerError,
  PeerPool,
  RawWebSocket,
  setupMesh,
  sleepOnInsert,
  someoneSleeps,
  TestPeer,
  useTestBroker,
  type CloseInfo,
  type ConnectOptions,
  type Frame,
  type SetupMember,
} from "@switchboard/testkit";
import { SignJWT } from "jose";
import postgres from "postgres";
import { UUID } from "./support/messaging.ts";

const MAX_MESSAGE_BYTES = 4096;
const HELLO_TIMEOUT_MS = 500;

const broker = useTestBroker({ MAX_CONNECTIONS_PER_MESH: "100", MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) });
const pool = new PeerPool();
afterAll(() => pool.closeAll());

/** A connected peer, closed after the file's tests. */
const connect = (member: SetupMember, meshId: string, options: Partial<ConnectOptions> = {}) =>
  pool.connect(broker.wsUrl, member, meshId, options);

/** Resolves with the close of the socket, or rejects after ms. */
async function closedWithin(peer: TestPeer, ms = 5_000): Promise<CloseInfo> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms; frames: ${JSON.stringify(peer.frames)}`)), ms);
  });
  try {
    return await Promise.race([peer.closed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The hello the options describe is refused with `code`: an error frame, then close 1008 with reason `code`. */
async function expectRefused(options: ConnectOptions, code: string): Promise<PeerError> {
  const outcome = await TestPeer.connect(broker.wsUrl, options).then(
    async (peer) => {
      await peer.close();
      return new Error(`hello was accepted: ${JSON.stringify(peer.helloAck)}`);
    },
    (error: unknown) => error,
  );
  if (!(outcome instanceof PeerError)) throw outcome;
  expect({ code: outcome.code, closeCode: outcome.closeCode, closeReason: outcome.closeReason }).toEqual({
    code,
    closeCode: 1008,
    closeReason: code,
  });
  expect(typeof outcome.frame?.message).toBe("string");
  return outcome;
}

/** A connection without hello: sends text first, then expects error `code` and close 1008 `code`. */
async function expectRawRefused(member: SetupMember, meshId: string, text: string, code: string): Promise<Frame> {
  const peer = await TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId, hello: false });
  pool.peers.push(peer);
  peer.sendRaw(text);
  const error = await peer.nextFrame("error");
  expect(error.code).toBe(code);
  expect(typeof error.message).toBe("string");
  expect(await closedWithin(peer)).toEqual({ code: 1008, reason: code });
  return error;
}

async function rejectedCounts(): Promise<Map<string, number>> {
  const res = await fetch(`${broker.url}/metrics`);
  expect(res.status).toBe(200);
  const family = parsePrometheusText(await res.text()).get("broker_connections_rejected_total");
  const counts = new Map<string, number>();
  for (const s of family?.samples ?? []) {
    if (s.name === "broker_connections_rejected_total" && s.labels.reason) counts.set(s.labels.reason, s.value);
  }
  return counts;
}

describe("hello", () => {
  test("a valid hello gets hello_ack with the presence's fields, echoing reqId", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["Ada"] });
    const before = Date.now();
    const peer = await connect(members[0]!, mesh.id);
    const ack = peer.helloAck!;
    expect(ack).toEqual({
      type: "hello_ack",
      reqId: peer.helloFrame!.reqId,
      presenceId: expect.stringMatching(UUID),
      memberId: members[0]!.id,
      meshId: mesh.id,
      displayName: "Ada",
      status: "idle",
      serverTime: expect.any(Number),
      maxMessageBytes: MAX_MESSAGE_BYTES,
      leaseSeconds: 30,
      idRetentionSeconds: 3600,
    });
    // The broker's clock, not some other number: same host, so within the hello's round trip plus slack.
    expect(ack.serverTime as number).toBeGreaterThanOrEqual(before - 5_000);
    expect(ack.serverTime as number).toBeLessThanOrEqual(Date.now() + 5_000);

    const named = await connect(members[0]!, mesh.id, { displayName: "Ada (laptop)" });
    expect(named.helloAck?.displayName).toBe("Ada (laptop)");
    expect(named.helloAck?.presenceId).not.toBe(ack.presenceId);
  });

  test("meshId may be the mesh's slug or its id", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const bySlug = await connect(members[0]!, mesh.slug);
    const byId = await connect(members[0]!, mesh.id);
    expect(bySlug.helloAck?.meshId).toBe(mesh.id);
    expect(byId.helloAck?.meshId).toBe(mesh.id);
  });

  // PROTOCOL.md §11: this broker has neither JWT_SECRET nor JWT_PUBLIC_KEY.
  test("a JWT hello to a broker with no JWT key is refused unauthorized, close 1008; nothing is enrolled", async () => {
    const { mesh } = await setupMesh(broker.admin, { members: 1 });
    const browser = await newIdentity();
    const jwt = await new SignJWT({ mesh: mesh.id, pubkey: browser.publicKey, exp: Math.floor(Date.now() / 1000) + 3600 })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode("any-secret-0123456789abcdefghijkl"));
    const refusal = await TestPeer.connect(broker.wsUrl, { identity: browser, meshId: mesh.id, jwt }).then(
      async (peer) => {
        await peer.close();
        return new Error(`accepted: ${JSON.stringify(peer.helloAck)}`);
      },
      (error: unknown) => error,
    );
    if (!(refusal instanceof PeerError)) throw refusal;
    expect({ code: refusal.code, close: refusal.closeCode, reason: refusal.closeReason }).toEqual({ code: "unauthorized", close: 1008, reason: "unauthorized" });
    const listed = (await broker.admin.raw("GET", `/v1/meshes/${mesh.id}/members`).then((r) => r.json())) as { members: Array<{ pubkey: string }> };
    expect(listed.members.map((m) => m.pubkey)).not.toContain(browser.publicKey);
  });

  test("a frame that is not JSON is refused as malformed", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    await expectRawRefused(members[0]!, mesh.id, "{this is not json", "malformed");
    await expectRawRefused(members[0]!, mesh.id, "[1,2,3]", "malformed");
  });

  test("a binary hello whose bytes are not UTF-8 is refused as malformed, saying so", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const peer = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id, hello: false });
    pool.peers.push(peer);
    peer.sendBinary(new Uint8Array([0x7b, 0xff, 0x7d]));
    expect(await peer.nextFrame("error")).toEqual({ type: "error", code: "malformed", message: "the frame is not text in UTF-8" });
    expect(await closedWithin(peer)).toEqual({ code: 1008, reason: "malformed" });
  });

  test("a text frame whose bytes are not UTF-8 closes the socket with 1007, as the WebSocket protocol has it", async () => {
    const raw = await RawWebSocket.open(broker.wsUrl);
    raw.sendTextBytes(new Uint8Array([0x7b, 0xff, 0x7d]));
    await raw.ended;
    expect({ messages: raw.messages, close: raw.close }).toEqual({ messages: [], close: { code: 1007, reason: "Received invalid UTF-8" } });
  });

  test("a hello with bad fields is refused as malformed", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const identity = members[0]!.identity;
    const bad: Record<string, unknown>[] = [
      { pubkey: "not-a-key" },
      { signature: "abc" },
      { timestamp: "yesterday" },
      { sessionId: "" },
      { sessionId: "s".repeat(129) },
      { meshId: 42 },
      { pid: -1 },
      // Text Postgres cannot store: refused at the edge, not failed in the database.
      { sessionId: "a\u0000b" },
      { cwd: "/tmp/\ud800" },
      { displayName: "x\u0000" },
    ];
    for (const helloOverrides of bad) {
      const error = await expectRefused({ identity, meshId: mesh.id, helloOverrides }, "malformed");
      expect(error.frame?.reqId).toBeDefined();
    }
    // A hello missing a required field.
    const hello = await buildHello({ identity, meshId: mesh.id });
    delete hello.signature;
    await expectRawRefused(members[0]!, mesh.id, JSON.stringify(hello), "malformed");
  });

  test("a first frame other than hello is refused as no_hello", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const error = await expectRawRefused(members[0]!, mesh.id, JSON.stringify({ type: "ping", reqId: "first" }), "no_hello");
    expect(error.reqId).toBe("first");
    const hello = await buildHello({ identity: members[0]!.identity, meshId: mesh.id });
    await expectRawRefused(members[0]!, mesh.id, JSON.stringify({ ...hello, type: "send" }), "no_hello");
  });

  test("a timestamp more than 60 s off, either way, is refused as timestamp_skew", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const identity = members[0]!.identity;
    await expectRefused({ identity, meshId: mesh.id, timestamp: Date.now() - 65_000 }, "timestamp_skew");
    await expectRefused({ identity, meshId: mesh.id, timestamp: Date.now() + 65_000 }, "timestamp_skew");
    // Inside the window both ways is fine.
    await connect(members[0]!, mesh.id, { timestamp: Date.now() - 45_000 });
    await connect(members[0]!, mesh.id, { timestamp: Date.now() + 45_000 });
  });

  test("a signature by another key is refused as bad_signature", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = [members[0]!, members[1]!];
    // Signed by b, claims to be a (both are members).
    await expectRefused({ identity: b.identity, meshId: mesh.id, helloOverrides: { pubkey: a.pubkey } }, "bad_signature");
    const stranger = await newIdentity();
    await expectRefused({ identity: stranger, meshId: mesh.id, helloOverrides: { pubkey: a.pubkey } }, "bad_signature");
  });

  test("a signature over other fields is refused as bad_signature", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const identity = members[0]!.identity;
    const timestamp = Date.now();
    const tampered: Record<string, unknown>[] = [
      { sessionId: "another-session" },
      { timestamp: timestamp + 1 },
      // Signed over the slug, sent with the id: the text covers meshId as sent.
      { meshId: mesh.id },
    ];
    for (const helloOverrides of tampered) {
      await expectRefused({ identity, meshId: mesh.slug, sessionId: "s-1", timestamp, helloOverrides }, "bad_signature");
    }
  });

  test("an unknown pubkey is refused as unauthorized", async () => {
    const { mesh } = await setupMesh(broker.admin, { members: 1 });
    await expectRefused({ identity: await newIdentity(), meshId: mesh.id }, "unauthorized");
  });

  test("an unknown mesh is refused as unauthorized", async () => {
    const { members } = await setupMesh(broker.admin, { members: 1 });
    const other = await setupMesh(broker.admin, { members: 1 });
    const identity = members[0]!.identity;
    await expectRefused({ identity, meshId: "no-such-mesh" }, "unauthorized");
    await expectRefused({ identity, meshId: crypto.randomUUID() }, "unauthorized");
    // A real mesh this key is not a member of.
    await expectRefused({ identity, meshId: other.mesh.id }, "unauthorized");
  });

  test("a revoked member is refused as unauthorized", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [revoked, kept] = [members[0]!, members[1]!];
    await broker.admin.revokeMember(mesh.id, revoked.id);
    await expectRefused({ identity: revoked.identity, meshId: mesh.id }, "unauthorized");
    await expectRefused({ identity: revoked.identity, meshId: mesh.slug }, "unauthorized");
    await connect(kept, mesh.id);
  });

  test("the same signed hello sent twice is refused as replayed", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const first = await connect(members[0]!, mesh.id);
    await expectRawRefused(members[0]!, mesh.id, JSON.stringify(first.helloFrame), "replayed");
    // Still refused once the first connection is gone.
    await first.close();
    await expectRawRefused(members[0]!, mesh.id, JSON.stringify(first.helloFrame), "replayed");
    // The first connection's presence was the only one admitted.
    await waitUntil(async () => (await broker.admin.peers(mesh.id)).length === 0, "the first presence to end");
  });

  test("MAX_CONNECTIONS_PER_MESH=100: of 101 simultaneous hellos exactly 100 are admitted and 1 refused as capacity", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 10 });
    const COUNT = 101;
    const sockets = await Promise.all(
      Array.from({ length: COUNT }, (_, i) =>
        TestPeer.connect(broker.wsUrl, { identity: members[i % members.length]!.identity, meshId: mesh.id, hello: false }),
      ),
    );
    pool.peers.push(...sockets);
    const hellos = await Promise.all(
      sockets.map((s, i) => buildHello({ identity: members[i % members.length]!.identity, meshId: mesh.id, sessionId: `cap-${i}` })),
    );
    // All written back to back, so the broker admits them concurrently.
    sockets.forEach((s, i) => s.sendFrame(hellos[i]!));
    const answers = await Promise.all(
      sockets.map((s) => s.nextFrame((f) => f.type === "hello_ack" || f.type === "error", 30_000)),
    );
    const admitted = sockets.filter((_, i) => answers[i]!.type === "hello_ack");
    const refused = sockets.filter((_, i) => answers[i]!.type === "error");
    expect(admitted.length).toBe(100);
    expect(refused.length).toBe(1);
    expect(answers.filter((a) => a.type === "error").map((a) => a.code)).toEqual(["capacity"]);
    expect(await closedWithin(refused[0]!)).toEqual({ code: 1008, reason: "capacity" });
    expect((await broker.admin.peers(mesh.id)).length).toBe(100);

    // Another hello while full is refused too; once a presence has ended, one fits again.
    await expectRefused({ identity: members[0]!.identity, meshId: mesh.id }, "capacity");
    await admitted[0]!.close();
    await waitUntil(async () => (await broker.admin.peers(mesh.id)).length === 99, "the closed presence to end");
    await connect(members[0]!, mesh.id);
    await Promise.all(admitted.map((p) => p.close()));
  });

  test.skipIf(backendKind !== "postgres")("a replacing hello whose socket closes while it is admitted still closes the socket it replaced", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const sessionId = `zombie-${crypto.randomUUID()}`;
    const old = await connect(members[0]!, mesh.id, { sessionId });
    const databaseUrl = broker.backend.databaseUrl!;
    // The replacing hello's statement sleeps once it has ended the old presence
    // (long enough to be seen asleep on a busy machine).
    const wake = await sleepOnInsert(databaseUrl, { presenceSession: sessionId }, 3);
    try {
      const replacing = new WebSocket(broker.wsUrl);
      await new Promise((resolve) => replacing.addEventListener("open", resolve, { once: true }));
      replacing.send(JSON.stringify(await buildHello({ identity: members[0]!.identity, meshId: mesh.id, sessionId })));
      await waitUntil(() => someoneSleeps(databaseUrl), "the replacing hello's statement asleep");
      replacing.close();
      // Its row is ended: the old socket must not stay open with nothing routed to it.
      expect(await closedWithin(old, 15_000)).toEqual({ code: 4000, reason: "replaced" });
    } finally {
      await wake();
    }
  });

  test("a second presence with the same member and sessionId replaces the first", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const old = await connect(members[0]!, mesh.id, { sessionId: "agent-1" });
    const other = await connect(members[0]!, mesh.id, { sessionId: "agent-2" });
    const fresh = await connect(members[0]!, mesh.id, { sessionId: "agent-1" });
    expect(await closedWithin(old)).toEqual({ code: 4000, reason: "replaced" });
    expect(fresh.helloAck?.presenceId).not.toBe(old.helloAck?.presenceId);

    expect((await fresh.request({ type: "ping" })).type).toBe("pong");
    expect(other.isOpen).toBe(true);
    const reply = await fresh.request({ type: "list_peers" });
    const list = reply.peers as Array<{ pubkey: string; presences: Array<{ sessionId: string }> }>;
    expect(list.length).toBe(1);
    expect(list[0]!.pubkey).toBe(members[0]!.pubkey);
    expect(list[0]!.presences.map((p) => p.sessionId).sort()).toEqual(["agent-1", "agent-2"]);
  });

  test("broker_connections_rejected_total{reason} counts refusals", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const member = members[0]!;
    const identity = member.identity;
    const before = await rejectedCounts();

    await expectRawRefused(member, mesh.id, "nope", "malformed");
    await expectRawRefused(member, mesh.id, JSON.stringify({ type: "ping" }), "no_hello");
    await expectRawRefused(member, mesh.id, JSON.stringify({ type: "ping" }), "no_hello");
    await expectRefused({ identity, meshId: mesh.id, timestamp: Date.now() - 120_000 }, "timestamp_skew");
    await expectRefused({ identity, meshId: mesh.id, helloOverrides: { sessionId: "x" } }, "bad_signature");
    await expectRefused({ identity: await newIdentity(), meshId: mesh.id }, "unauthorized");
    const first = await connect(member, mesh.id);
    await expectRawRefused(member, mesh.id, JSON.stringify(first.helloFrame), "replayed");

    const after = await rejectedCounts();
    const delta = (reason: string) => (after.get(reason) ?? 0) - (before.get(reason) ?? 0);
    expect({
      malformed: delta("malformed"),
      no_hello: delta("no_hello"),
      timestamp_skew: delta("timestamp_skew"),
      bad_signature: delta("bad_signature"),
      unauthorized: delta("unauthorized"),
      replayed: delta("replayed"),
      capacity: delta("capacity"),
    }).toEqual({ malformed: 1, no_hello: 2, timestamp_skew: 1, bad_signature: 1, unauthorized: 1, replayed: 1, capacity: 0 });
  });

  test("a frame larger than MAX_MESSAGE_BYTES closes the connection with 1009", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = [await connect(members[0]!, mesh.id), await connect(members[1]!, mesh.id)];
    // A frame well inside the limit is fine (the broker keeps room for the push's own fields).
    const fits = await a.send(b.identity.publicKey, { ciphertext: "x".repeat(MAX_MESSAGE_BYTES / 2) });
    expect(fits.type).toBe("ack");
    a.sendRaw(JSON.stringify({ type: "ping", pad: "x".repeat(MAX_MESSAGE_BYTES + 100) }));
    expect((await closedWithin(a)).code).toBe(1009);
    expect(b.isOpen).toBe(true);

    // Before the hello too.
    const raw = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id, hello: false });
    pool.peers.push(raw);
    raw.sendRaw("y".repeat(MAX_MESSAGE_BYTES * 2));
    expect((await closedWithin(raw)).code).toBe(1009);
  });

  test("a send right behind the hello on the same socket is handled after it and acked", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const receiver = await connect(members[1]!, mesh.id);
    const sender = await TestPeer.connect(broker.wsUrl, { identity: members[0]!.identity, meshId: mesh.id, hello: false });
    pool.peers.push(sender);
    const hello = await buildHello({ identity: members[0]!.identity, meshId: mesh.id });
    // Both frames written without awaiting anything between them.
    sender.sendRaw(JSON.stringify(hello));
    sender.sendFrame({ type: "send", reqId: "right-behind", targetSpec: receiver.identity.publicKey, nonce: "n1", ciphertext: "c1" });
    sender.sendFrame({ type: "ping", reqId: "then-ping" });

    const ack = await sender.nextFrame((f) => f.reqId === "right-behind");
    expect(ack).toMatchObject({ type: "ack", queued: true, recipients: 1, messageId: expect.stringMatching(UUID) });
    await sender.nextFrame((f) => f.reqId === "then-ping");
    expect(sender.frames.map((f) => f.type)).toEqual(["hello_ack", "ack", "pong"]);
    expect(sender.frames[0]!.reqId).toBe(hello.reqId);
    expect(sender.isOpen).toBe(true);

    const [push] = await receiver.waitForPushes(1);
    expect(push).toMatchObject({ messageId: ack.messageId, nonce: "n1", ciphertext: "c1", senderPubkey: members[0]!.pubkey });
  });
});

/** Polls check every 100 ms for up to 10 s. */
async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await Bun.sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

describe.skipIf(backendKind !== "postgres")("a hello racing its member's revocation (needs DATABASE_URL)", () => {
  let sql: postgres.Sql;
  beforeAll(() => {
    sql = postgres(broker.backend.databaseUrl!, { max: 2, onnotice: () => {} });
  });
  afterAll(() => sql?.end());
  const lockWaiters = async () =>
    (await sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`)[0]!.n;

  test("a revocation made while the hello waits for its mesh leaves the member no live presence once it has answered", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const member = members[0]!;
    let answered = false;
    const { hello, revocation } = await sql.begin(async (tx) => {
      await tx`SELECT id FROM meshes WHERE id = ${mesh.id} FOR UPDATE`;
      const hello = TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId: mesh.id }).then(
        (peer) => peer,
        (error: unknown) => error,
      );
      await waitUntil(async () => (await lockWaiters()) >= 1, "the hello waiting for its mesh");
      const revocation = broker.admin.revokeMember(mesh.id, member.id).then(() => (answered = true));
      // A revocation that takes no lock a hello takes answers at once.
      await waitUntil(async () => answered || (await lockWaiters()) >= 2, "the revocation answered, or waiting for the mesh");
      return { hello, revocation };
    });
    await revocation;
    const outcome = await hello;
    const [live] = await sql`SELECT count(*)::int AS n FROM presences WHERE member_id = ${member.id} AND disconnected_at IS NULL`;
    expect(live!.n).toBe(0);
    // Admitted before the revocation, it is closed as revoked; else refused.
    if (outcome instanceof TestPeer) expect((await closedWithin(outcome)).code).toBe(4002);
    else expect(outcome instanceof PeerError ? outcome.code : outcome).toBe("unauthorized");
  });
});

describe(`hello timeout (HELLO_TIMEOUT_MS=${HELLO_TIMEOUT_MS})`, () => {
  // Its own broker: a short timeout would race the other tests' sockets that open before their hello.
  const quick = useTestBroker({ HELLO_TIMEOUT_MS: String(HELLO_TIMEOUT_MS) });

  test("no hello within HELLO_TIMEOUT_MS is refused as hello_timeout", async () => {
    const { mesh, members } = await setupMesh(quick.admin, { members: 1 });
    const peer = await TestPeer.connect(quick.wsUrl, { identity: members[0]!.identity, meshId: mesh.id, hello: false });
    pool.peers.push(peer);
    const close = await closedWithin(peer, HELLO_TIMEOUT_MS + 10_000);
    expect(close).toEqual({ code: 1008, reason: "hello_timeout" });
    expect(peer.frames).toEqual([{ type: "error", code: "hello_timeout", message: expect.any(String) }]);
  });
});
