// Every frame type and every request is bounded: control frames and acks per
// member, channels per member, hooks per token whatever pid and cwd they
// name, sockets waiting for their hello per instance and per client address,
// and addresses whose hellos keep failing. Each limit answers with a coded
// error and leaves the rest of the broker serving.
import { afterEach, describe, expect, test } from "bun:test";
import {
  backendKind,
  buildHello,
  PeerPool,
  pipelined,
  rawPresence,
  RawUpgradeRefused,
  RawWebSocket,
  setupMesh,
  useTestBroker,
  waitUntil,
  type SetupMember,
} from "@switchboard/testkit";
import { messageStatus } from "./support/http-api.ts";
import { deltas, queryPostgres, scrape, sendFrame, sendMany, str, withSlowJoins } from "./support/messaging.ts";
import { postHook } from "./support/status.ts";

/** What GET /v1/messages/:id says of a message's recipients. */
interface StatusBody {
  recipients: Array<{ state: string }>;
}

const pool = new PeerPool();
afterEach(() => pool.closeAll());

describe("limits per member (CONTROL_RATE_LIMIT_PER_MIN=8, ACK_RATE_LIMIT_PER_MIN=10, MAX_CHANNELS_PER_MEMBER=3)", () => {
  const broker = useTestBroker({
    CONTROL_RATE_LIMIT_PER_MIN: "8",
    ACK_RATE_LIMIT_PER_MIN: "10",
    MAX_CHANNELS_PER_MEMBER: "3",
    HOOK_RATE_LIMIT_PER_TOKEN_PER_MIN: "5",
    // Pushes whose acks are refused come again after it; long enough that on
    // a busy machine the acks a test does send are read before it runs out.
    LEASE_SECONDS: "8",
  });

  test("control frames past the limit get rate_limited with their reqId; sends are counted apart", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const peer = await pool.connect(broker.wsUrl, a, mesh.id);
    const kinds = [
      { type: "ping" },
      { type: "list_peers" },
      { type: "set_status", status: "idle" },
      { type: "join", channel: "#one" },
      { type: "leave", channel: "#one" },
      { type: "ping" },
      { type: "ping" },
      { type: "ping" },
    ];
    for (const frame of kinds) expect((await peer.request(frame)).type).not.toBe("error");
    const refused = await peer.request({ type: "ping", reqId: "ninth" });
    expect(refused).toMatchObject({ type: "error", code: "rate_limited", reqId: "ninth" });
    expect((await peer.request({ type: "join", channel: "#x" })).code).toBe("rate_limited");
    expect((await peer.send(b.pubkey)).type).toBe("ack");
  });

  test("acks of pushes awaiting them on the connection are not counted: twelve acked past a limit of ten are all applied", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await pool.connect(broker.wsUrl, a, mesh.id);
    const recipient = await pool.connect(broker.wsUrl, b, mesh.id);
    const token = await broker.admin.createApiToken(mesh.id, a.id);
    await sendMany(sender, Array.from({ length: 12 }, () => sendFrame(b.pubkey)));
    const ids = (await recipient.waitForPushes(12)).map((p) => str(p.messageId));
    recipient.sendFrame({ type: "client_ack", messageIds: ids.slice(0, 10), reqId: "ten" });
    recipient.sendFrame({ type: "client_ack", messageIds: ids.slice(10), reqId: "two" });
    const states = async () => Promise.all(ids.map(async (id) => (await messageStatus<StatusBody>(broker.url, token, id)).body.recipients[0]?.state));
    await waitUntil(async () => (await states()).every((state) => state === "acked"), 15_000, "all twelve acked");
    expect(recipient.frames.filter((f) => f.type === "error")).toEqual([]);
  });

  test("acks of ids no push on the connection awaits are counted by ids: past the limit refused and not applied, so those pushes come again", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await pool.connect(broker.wsUrl, a, mesh.id);
    const desk = await pool.connect(broker.wsUrl, b, mesh.id, { sessionId: "desk" });
    const acks = await sendMany(sender, Array.from({ length: 12 }, () => sendFrame(b.pubkey)));
    const ids = (await desk.waitForPushes(12)).map((p) => str(p.messageId));
    // A second presence of the member acks what was pushed to the first: none of it is awaited there.
    const laptop = await pool.connect(broker.wsUrl, b, mesh.id, { sessionId: "laptop" });
    laptop.sendFrame({ type: "client_ack", messageIds: ids.slice(0, 10), reqId: "ten" });
    const over = await laptop.request({ type: "client_ack", messageIds: ids.slice(10), reqId: "two" });
    expect(over).toMatchObject({ type: "error", code: "rate_limited", reqId: "two" });
    // The two unapplied acks leave their deliveries leased: they come again after the lease.
    const again = () => [...desk.pushes(), ...laptop.pushes()].filter((p) => p.attempt === 2);
    await waitUntil(() => again().length >= 2, 30_000, "two pushes again");
    expect(again().map((p) => p.messageId).sort()).toEqual(ids.slice(10).sort());
    expect(acks.every((ack) => ack.type === "ack")).toBe(true);
  });

  test.skipIf(backendKind !== "postgres")("acks read after their socket closed are limited as on an open socket: closing is no way around the limit", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await pool.connect(broker.wsUrl, a, mesh.id);
    const token = await broker.admin.createApiToken(mesh.id, a.id);
    const desk = await pool.connect(broker.wsUrl, b, mesh.id, { sessionId: "desk" });
    await sendMany(sender, Array.from({ length: 12 }, () => sendFrame(b.pubkey)));
    const ids = (await desk.waitForPushes(12)).map((p) => str(p.messageId));
    // Another presence of the member: a join that takes its time, then acks
    // of all twelve and its close, so the acks are read once it closed.
    await withSlowJoins(broker.backend, 1, async () => {
      const laptop = await rawPresence(broker.wsUrl, mesh.id, b.identity);
      laptop.sendJson({ type: "join", channel: "#slow", reqId: "slow" });
      laptop.sendJson({ type: "client_ack", messageIds: ids.slice(0, 10) });
      laptop.sendJson({ type: "client_ack", messageIds: ids.slice(10) });
      laptop.closeNormally();
      const again = () => desk.pushes().filter((p) => p.attempt === 2);
      await waitUntil(() => again().length >= 2, 30_000, "two pushes again");
      expect(again().map((p) => p.messageId).sort()).toEqual(ids.slice(10).sort());
    });
    const states = await Promise.all(ids.map(async (id) => (await messageStatus<StatusBody>(broker.url, token, id)).body.recipients[0]?.state));
    expect(states.filter((state) => state === "acked")).toHaveLength(10);
  });

  test("an ack frame past the limit still applies the ids a push on the connection awaits; only the others are refused", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await pool.connect(broker.wsUrl, a, mesh.id);
    const recipient = await pool.connect(broker.wsUrl, b, mesh.id);
    const token = await broker.admin.createApiToken(mesh.id, a.id);
    await sendMany(sender, [sendFrame(b.pubkey)]);
    const [push] = await recipient.waitForPushes(1);
    const mine = str(push!.messageId);
    const madeUp = Array.from({ length: 11 }, () => crypto.randomUUID());
    const over = await recipient.request({ type: "client_ack", messageIds: [mine, ...madeUp], reqId: "mixed" });
    expect(over).toMatchObject({ type: "error", code: "rate_limited", reqId: "mixed" });
    const state = async () => (await messageStatus<StatusBody>(broker.url, token, mine)).body.recipients[0]?.state;
    await waitUntil(async () => (await state()) === "acked", 10_000, "the awaited id applied");
  });

  test("a member joins at most MAX_CHANNELS_PER_MEMBER channels; joining one it is in, or after leaving one, works", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const peer = await pool.connect(broker.wsUrl, members[0]!, mesh.id);
    for (const channel of ["#a", "#b", "#c"]) {
      expect(await peer.request({ type: "join", channel })).toMatchObject({ type: "ack", channel, joined: true });
    }
    const fourth = await peer.request({ type: "join", channel: "#d" });
    expect(fourth).toMatchObject({ type: "error", code: "capacity" });
    expect(await peer.request({ type: "join", channel: "#a" })).toMatchObject({ type: "ack", joined: true });
    expect(await peer.request({ type: "leave", channel: "#a" })).toMatchObject({ type: "ack", joined: false });
    expect(await peer.request({ type: "join", channel: "#d" })).toMatchObject({ type: "ack", channel: "#d", joined: true });
  });

  test.skipIf(backendKind !== "postgres")("joins racing on several connections: the cap is exact, and one channel joined twice at once is joined by both", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [full, fresh] = members as [SetupMember, SetupMember];
    const connect = (m: SetupMember) => Promise.all([1, 2, 3].map(() => pool.connect(broker.wsUrl, m, mesh.id)));
    const [f1, f2, f3] = await connect(full);
    for (const channel of ["#a", "#b"]) expect(await f1!.request({ type: "join", channel })).toMatchObject({ type: "ack", joined: true });
    // Every join's insert takes its time, so that they overlap.
    await withSlowJoins(broker.backend, 0.3, async () => {
      const racing = await Promise.all([f1!.request({ type: "join", channel: "#c" }), f2!.request({ type: "join", channel: "#d" }), f3!.request({ type: "join", channel: "#e" })]);
      expect(racing.map((r) => r.type).sort()).toEqual(["ack", "error", "error"]);
      expect(racing.filter((r) => r.type === "error").map((r) => r.code)).toEqual(["capacity", "capacity"]);
      const [g1, g2] = await connect(fresh);
      const same = await Promise.all([g1!.request({ type: "join", channel: "#x" }), g2!.request({ type: "join", channel: "#x" })]);
      expect(same.map((r) => ({ type: r.type, joined: r.joined }))).toEqual([{ type: "ack", joined: true }, { type: "ack", joined: true }]);
    });
  });

  test("hooks: one token is limited whatever pid and cwd it names; an out-of-range pid header is ignored, not a 500", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const token = await broker.admin.createHookToken(mesh.id, members[0]!.id);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const answer = await postHook(broker.url, { token, body: { cwd: `/tmp/${"x".repeat(2000)}/${i}`, pid: 1000 + i, status: "working" } });
      statuses.push(answer.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);

    const other = await setupMesh(broker.admin, { members: 1 });
    const second = await broker.admin.createHookToken(other.mesh.id, other.members[0]!.id);
    for (const header of ["99999999999", "-4", "12abc", "0"]) {
      const answer = await postHook(broker.url, { token: second, body: { cwd: "/tmp/p", status: "idle" }, headers: { "x-switchboard-pid": header } });
      expect({ header, status: answer.status }).toEqual({ header, status: 200 });
    }
  });
});

describe("a connection refused too often (MAX_REFUSED_FRAMES_PER_MIN=5, CONTROL_RATE_LIMIT_PER_MIN=3)", () => {
  const broker = useTestBroker({ MAX_REFUSED_FRAMES_PER_MIN: "5", CONTROL_RATE_LIMIT_PER_MIN: "3" });

  test("pipelined pings: 3 pongs, 6 refusals, a closing notice, close 1008 rate_limited; the rest unanswered; others still served", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const flooder = await rawPresence(broker.wsUrl, mesh.id, a.identity);
    // Returns once every ping is answered or the broker has closed the socket.
    const answers = await pipelined(flooder, Array.from({ length: 20 }, () => ({ type: "ping" })), 15_000);
    expect(answers.map((x) => x?.type === "pong" ? "pong" : x?.code ?? "none")).toEqual([
      ...Array(3).fill("pong"),
      ...Array(6).fill("rate_limited"),
      ...Array(11).fill("none"),
    ]);
    const notice = flooder.messages.map((m) => JSON.parse(m) as Record<string, unknown>).find((f) => f.type === "error" && f.reqId === undefined);
    expect(notice).toMatchObject({ code: "rate_limited", message: expect.stringContaining("closing") });
    expect(flooder.close).toEqual({ code: 1008, reason: "rate_limited" });
    const other = await pool.connect(broker.wsUrl, b, mesh.id);
    expect((await other.request({ type: "ping" })).type).toBe("pong");
  });

  test("sends already being written when the limit is passed are answered before the close: none is stored unanswered", async () => {
    // A round where the last send was not begun yet as the limit was passed
    // (the broker read the frames in two turns) tells nothing: run again.
    let exercised = false;
    for (let round = 0; round < 3 && !exercised; round++) {
      const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
      const [a, b] = members as [SetupMember, SetupMember];
      const recipient = await pool.connect(broker.wsUrl, b, mesh.id);
      const sender = await rawPresence(broker.wsUrl, mesh.id, a.identity);
      // Sends without an id, to nobody and to the recipient by turns: the sixth refusal, to the eleventh, passes the limit.
      const nobody = "b".repeat(64);
      const frames = Array.from({ length: 12 }, (_, i) => ({ type: "send", targetSpec: i % 2 === 1 ? b.pubkey : nobody, nonce: `n${i}`, ciphertext: "Yw==" }));
      const answers = await pipelined(sender, frames, 15_000);
      await sender.waitFor(() => sender.close ?? undefined, 15_000, "the close");
      expect(sender.close).toEqual({ code: 1008, reason: "unknown_target" });
      const acked = frames.filter((_, i) => answers[i]?.type === "ack").map((f) => f.nonce);
      // The last send was being written as the limit was passed.
      exercised = acked.includes("n11");
      // The recipient got exactly what the sender was told was stored: what a sender was not told, it would send again.
      const again = await pool.connect(broker.wsUrl, a, mesh.id);
      await again.send(b.pubkey, { nonce: "marker" });
      const pushes = await recipient.waitForPushes(acked.length + 1);
      expect(pushes.map((p) => p.nonce)).toEqual([...acked, "marker"]);
    }
    expect(exercised).toBe(true);
  });

  test("invalid frames count too; five refusals leave the socket open, the sixth closes it with 1008 invalid", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const peer = await rawPresence(broker.wsUrl, mesh.id, members[0]!.identity);
    const invalid = await pipelined(peer, Array.from({ length: 5 }, () => ({ type: "no_such_frame" })), 15_000);
    expect(invalid.map((x) => x?.code)).toEqual(Array(5).fill("invalid"));
    const [pong] = await pipelined(peer, [{ type: "ping" }], 15_000);
    expect(pong?.type).toBe("pong");
    const [sixth] = await pipelined(peer, [{ type: "no_such_frame" }], 15_000);
    expect(sixth?.code).toBe("invalid");
    await peer.waitFor(() => peer.close ?? undefined, 15_000, "the close");
    expect(peer.close).toEqual({ code: 1008, reason: "invalid" });
  });
});

describe("sockets waiting for their hello (MAX_PENDING_HELLOS_PER_ADDRESS=3, HELLO_FAILURES_PER_ADDRESS_PER_MIN=2)", () => {
  const broker = useTestBroker({
    MAX_PENDING_HELLOS_PER_ADDRESS: "3",
    HELLO_FAILURES_PER_ADDRESS_PER_MIN: "2",
    TRUSTED_PROXIES: "127.0.0.1,::1",
  });

  test("a socket that closes before its hello is not logged at info (a flood of them cannot flood the log); a presence's close is", async () => {
    const silent = await RawWebSocket.open(broker.wsUrl);
    silent.destroy();
    await silent.ended;
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const peer = await pool.connect(broker.wsUrl, members[0]!, mesh.id);
    await peer.close();
    await broker.process.waitForLog("ws close", 10_000, (line) => typeof line.presenceId === "string");
    expect(broker.process.logs.filter((line) => line.msg === "ws close" && line.presenceId === undefined)).toEqual([]);
  });

  const refusedStatus = async (headers: Record<string, string>) => {
    try {
      const ws = await RawWebSocket.open(broker.wsUrl, headers);
      ws.destroy();
      return 101;
    } catch (error) {
      if (error instanceof RawUpgradeRefused) return error.status;
      throw error;
    }
  };

  const REJECTED = (reason: string) => `broker_connections_rejected_total{reason=${reason}}`;

  test("a fourth pending socket from one address is refused with 503, counted as capacity; one that leaves makes room", async () => {
    const from = { "x-forwarded-for": "198.51.100.7" };
    const open = await Promise.all([1, 2, 3].map(() => RawWebSocket.open(broker.wsUrl, from)));
    const before = await scrape(broker.url);
    expect(await refusedStatus(from)).toBe(503);
    expect(deltas(before, await scrape(broker.url), [REJECTED("capacity")])).toEqual({ [REJECTED("capacity")]: 1 });
    // Another address is counted apart, and the broker keeps answering.
    expect(await refusedStatus({ "x-forwarded-for": "198.51.100.8" })).toBe(101);
    expect((await fetch(`${broker.url}/health`)).status).toBe(200);
    open[0]!.destroy();
    await open[0]!.ended;
    const room = await waitForStatus(() => refusedStatus(from), 101);
    expect(room).toBe(101);
    for (const ws of open) ws.destroy();
  });

  test("a proxy that writes the client's address with its port, or no address: the client counts as what the proxy wrote, whatever it put left of it", async () => {
    // The last: an entry that is no address (an obfuscated one) is the client as the proxy wrote it.
    for (const spelled of [(port: number) => `198.51.100.21:${port}`, (port: number) => `[2001:db8:21::1]:${port}`, () => "unknown"]) {
      // Each socket's header starts with an address of the client's choosing.
      const from = (i: number) => ({ "x-forwarded-for": `192.0.2.${i}, ${spelled(40000 + i)}` });
      const open = await Promise.all([1, 2, 3].map((i) => RawWebSocket.open(broker.wsUrl, from(i))));
      expect(await refusedStatus(from(4))).toBe(503);
      // Another client behind the same proxy, with the same made-up entry, is counted apart.
      expect(await refusedStatus({ "x-forwarded-for": "192.0.2.4, 198.51.100.22:40004" })).toBe(101);
      for (const ws of open) ws.destroy();
      await Promise.all(open.map((ws) => ws.ended));
    }
  });

  test("an address whose hellos keep failing is turned away with 429, counted as rate_limited; others are not", async () => {
    const from = { "x-forwarded-for": "203.0.113.9" };
    for (let i = 0; i < 2; i++) {
      const ws = await RawWebSocket.open(broker.wsUrl, from);
      ws.sendText("not a hello");
      await ws.waitFor(() => ws.close ?? undefined, 10_000, "the refusal's close");
      expect(ws.close?.code).toBe(1008);
      ws.destroy();
    }
    const before = await scrape(broker.url);
    expect(await refusedStatus(from)).toBe(429);
    expect(deltas(before, await scrape(broker.url), [REJECTED("rate_limited")])).toEqual({ [REJECTED("rate_limited")]: 1 });
    expect(await refusedStatus({ "x-forwarded-for": "203.0.113.10" })).toBe(101);
    // The refusals that used up its limit name it in the log: the upgrades refused after them are not logged.
    const named = broker.process.logs.filter((line) => line.msg === "ws hello refused" && line.address === "203.0.113.9");
    expect(named.map((line) => line.code)).toEqual(["malformed", "malformed"]);
  });
});

const refusal = (ws: RawWebSocket) => {
  const first = ws.messages[0];
  return first === undefined ? undefined : (JSON.parse(first) as { code: string; message: string });
};

// The default hello timeout: the thirty sockets of the burst wait for one
// another to open before any sends its hello, which on a busy machine took
// longer than a short timeout gave the first ones.
describe("a burst of sockets from one address (HELLO_FAILURES_PER_ADDRESS_PER_MIN=10)", () => {
  const broker = useTestBroker({
    MAX_PENDING_HELLOS_PER_ADDRESS: "100",
    HELLO_FAILURES_PER_ADDRESS_PER_MIN: "10",
    TRUSTED_PROXIES: "127.0.0.1,::1",
  });

  /** A hello that names a real member of a real mesh, with a signature that does not verify. */
  async function badHello(): Promise<string> {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const frame = await buildHello({ identity: members[0]!.identity, meshId: mesh.id });
    return JSON.stringify({ ...frame, signature: "0".repeat(128) });
  }

  test("opened before its first refusal, its hellos are refused no more times than the limit: the rest are turned away unchecked", async () => {
    const from = { "x-forwarded-for": "203.0.113.50" };
    const hello = await badHello();
    const first = await RawWebSocket.open(broker.wsUrl, from);
    first.sendText(hello);
    expect((await first.waitFor(() => refusal(first), 10_000, "the first refusal")).code).toBe("bad_signature");
    first.destroy();
    // One refused: 9 left. Thirty sockets open (the upgrade checks refusals made, 1 of 10), then all send at once.
    const burst = await Promise.all(Array.from({ length: 30 }, () => RawWebSocket.open(broker.wsUrl, from)));
    for (const ws of burst) ws.sendText(hello);
    const answers = await Promise.all(burst.map((ws) => ws.waitFor(() => refusal(ws), 10_000, "the hello's refusal")));
    for (const ws of burst) ws.destroy();
    const checked = answers.filter((a) => a.code === "bad_signature").length;
    expect(checked).toBeLessThanOrEqual(9);
    expect(answers.filter((a) => a.code !== "bad_signature")).toEqual(
      Array.from({ length: 30 - checked }, () => ({ type: "error", reqId: expect.any(String), code: "capacity", message: "too many refused hellos from this address; try again in a minute" })),
    );
    // Another address is not touched by it.
    const other = await RawWebSocket.open(broker.wsUrl, { "x-forwarded-for": "203.0.113.51" });
    other.sendText(hello);
    expect((await other.waitFor(() => refusal(other), 10_000, "the other address's refusal")).code).toBe("bad_signature");
    other.destroy();
  });
});

describe("sockets that never say hello (HELLO_TIMEOUT_MS=300)", () => {
  const broker = useTestBroker({ HELLO_TIMEOUT_MS: "300", TRUSTED_PROXIES: "127.0.0.1,::1" });

  test("a socket that never says hello is refused hello_timeout without an info line (a flood of them cannot flood the log)", async () => {
    const silent = await RawWebSocket.open(broker.wsUrl, { "x-forwarded-for": "203.0.113.60" });
    await silent.waitFor(() => silent.close ?? undefined, 10_000, "the hello timeout's close");
    expect(refusal(silent)?.code).toBe("hello_timeout");
    silent.destroy();
    // A refusal logged at info after it: the log has been read past the timeout's place.
    const marker = await RawWebSocket.open(broker.wsUrl, { "x-forwarded-for": "203.0.113.61" });
    marker.sendText("not a hello");
    await broker.process.waitForLog("ws hello refused", 10_000, (line) => line.code === "malformed");
    marker.destroy();
    expect(broker.process.logs.filter((line) => line.msg === "ws hello refused" && line.code === "hello_timeout")).toEqual([]);
  });
});

/** Retries probe until it answers `want` (the broker learns of a closed socket asynchronously). */
async function waitForStatus(probe: () => Promise<number>, want: number): Promise<number> {
  let last = 0;
  for (let i = 0; i < 50; i++) {
    last = await probe();
    if (last === want) return last;
    await Bun.sleep(100);
  }
  return last;
}
