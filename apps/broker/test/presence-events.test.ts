// PROTOCOL.md §10 presence events: the snapshot after the ack, joined, left
// and status as they happen (also from a hook and from another instance),
// a replaced session as left then joined, a dead instance's presences as
// left, and unsubscribe.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  AdminClient,
  backendKind,
  PeerPool,
  postgresBackend,
  setupMesh,
  sleepOnInsert,
  someoneSleeps,
  spawnBroker,
  TEST_ADMIN_TOKEN,
  useTestBroker,
  waitUntil,
  type Frame,
  type SetupMember,
  type TestPeer,
} from "@switchboard/testkit";
import { scrape } from "./support/messaging.ts";

const pool = new PeerPool();

// At debug: a test reads when the broker answered a frame on a closed socket.
const broker = useTestBroker({ LOG_LEVEL: "debug" });
afterAll(async () => {
  await pool.closeAll();
});

const events = (peer: TestPeer) => peer.frames.filter((f) => f.type === "presence");
const summary = (f: Frame) => `${String(f.event)} ${String(f.displayName)} ${String(f.status)}`;

/** Waits for the next presence event matching, returns it. */
const nextEvent = (peer: TestPeer, event: string, displayName: string, timeoutMs?: number) =>
  peer.nextFrame((f) => f.type === "presence" && f.event === event && f.displayName === displayName, timeoutMs);

async function subscribe(peer: TestPeer): Promise<Frame> {
  return peer.request({ type: "subscribe", events: ["presence"] });
}

describe.skipIf(backendKind !== "postgres")("a subscribe behind a send on a socket that closed meanwhile (needs DATABASE_URL)", () => {
  test("leaves no subscriber behind", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["closer", "other"] });
    const [closer, other] = members as [SetupMember, SetupMember];
    const databaseUrl = broker.backend.databaseUrl!;
    const held = Buffer.from(`held ${crypto.randomUUID()}`).toString("base64");
    // The send's statement sleeps, so the socket closes while the subscribe
    // waits behind it (long enough to be seen asleep on a busy machine).
    const wake = await sleepOnInsert(databaseUrl, { messageCiphertext: held }, 3);
    try {
      const subscribers = async () => (await scrape(broker.url)).get("broker_presence_subscribers");
      const before = await subscribers();
      expect(before).toBeDefined();
      const peer = await pool.connect(broker.wsUrl, closer, mesh.id);
      peer.sendFrame({ type: "send", reqId: "held", targetSpec: other.pubkey, nonce: "n", ciphertext: held });
      peer.sendFrame({ type: "subscribe", reqId: "sub", events: ["presence"] });
      // Once the send's statement sleeps, the subscribe read right behind it waits for it.
      await waitUntil(() => someoneSleeps(databaseUrl), 10_000, "the send's statement asleep");
      await peer.close();
      // The subscribe runs right after the send's commit; its answer goes to nobody.
      await broker.process.waitForLog("ws answer after close", 20_000, (l) => l.reqId === "sub");
      expect(await subscribers()).toBe(before);
    } finally {
      await wake();
    }
  });
});

describe("presence events", () => {
  test("subscribe: the ack, then joined for every live presence including the subscriber's own", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["watcher", "alice", "bob"] });
    const [watcher, alice] = members as [SetupMember, SetupMember, SetupMember];
    const a = await pool.connect(broker.wsUrl, alice, mesh.id);
    const w = await pool.connect(broker.wsUrl, watcher, mesh.id);
    const ack = await subscribe(w);
    expect(ack).toMatchObject({ type: "ack", subscribed: ["presence"] });
    await nextEvent(w, "joined", "alice");
    await nextEvent(w, "joined", "watcher");
    const ackIndex = w.frames.indexOf(ack);
    expect(w.frames.findIndex((f) => f.type === "presence")).toBeGreaterThan(ackIndex);
    expect(events(w).map(summary).sort()).toEqual(["joined alice idle", "joined watcher idle"]);
    expect(events(w).find((e) => e.displayName === "alice")).toEqual({
      type: "presence",
      event: "joined",
      presenceId: a.helloAck?.presenceId,
      pubkey: alice.pubkey,
      displayName: "alice",
      sessionId: a.sessionId,
      status: "idle",
    });
  });

  test("joined, status (from set_status and from a hook), left; a replaced session is left then joined", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["watcher", "bob"] });
    const [watcher, bob] = members as [SetupMember, SetupMember];
    const w = await pool.connect(broker.wsUrl, watcher, mesh.id);
    await subscribe(w);
    await nextEvent(w, "joined", "watcher");

    const b = await pool.connect(broker.wsUrl, bob, mesh.id, { cwd: "/srv/bob", pid: 4100 });
    expect((await nextEvent(w, "joined", "bob")).presenceId).toBe(b.helloAck?.presenceId);
    await b.request({ type: "set_status", status: "dnd" });
    expect((await nextEvent(w, "status", "bob")).status).toBe("dnd");
    await b.request({ type: "set_status", status: "idle" });
    await nextEvent(w, "status", "bob");

    const hookToken = await broker.admin.createHookToken(mesh.id, bob.id);
    const hook = await fetch(`${broker.url}/hook/set-status`, {
      method: "POST",
      headers: { authorization: `Bearer ${hookToken}`, "content-type": "application/json" },
      body: JSON.stringify({ cwd: "/srv/bob", pid: 4100, status: "working" }),
    });
    expect(hook.status).toBe(200);
    expect(await nextEvent(w, "status", "bob")).toMatchObject({ status: "working", presenceId: b.helloAck?.presenceId });

    const again = await pool.connect(broker.wsUrl, bob, mesh.id, { sessionId: b.sessionId });
    const left = await nextEvent(w, "left", "bob");
    const joined = await nextEvent(w, "joined", "bob");
    expect([left.presenceId, joined.presenceId]).toEqual([b.helloAck?.presenceId, again.helloAck?.presenceId]);
    expect(w.frames.indexOf(left)).toBeLessThan(w.frames.indexOf(joined));

    expect((await b.closed).code).toBe(4000);
    await again.close();
    expect((await nextEvent(w, "left", "bob")).presenceId).toBe(again.helloAck?.presenceId);
    // The replaced socket's own close tells nothing new: one left per presence.
    const pong = await w.request({ type: "ping" });
    const before = w.frames.indexOf(pong);
    expect(events(w).filter((e) => w.frames.indexOf(e) < before && e.event === "left").length).toBe(2);
  });

  test("unsubscribe stops the events", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["watcher", "other", "carol"] });
    const [watcher, other, carol] = members as [SetupMember, SetupMember, SetupMember];
    const w = await pool.connect(broker.wsUrl, watcher, mesh.id);
    const o = await pool.connect(broker.wsUrl, other, mesh.id);
    await subscribe(w);
    await subscribe(o);
    await nextEvent(w, "joined", "other");
    expect(await w.request({ type: "unsubscribe", events: ["presence"] })).toMatchObject({ type: "ack", subscribed: [] });
    const seen = events(w).length;
    await pool.connect(broker.wsUrl, carol, mesh.id);
    // The other subscriber hears carol; the watcher, asked after that, has heard nothing new.
    await nextEvent(o, "joined", "carol");
    await w.request({ type: "ping" });
    expect(events(w).length).toBe(seen);
  });

  test("an unknown event kind is invalid", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const peer = await pool.connect(broker.wsUrl, members[0]!, mesh.id);
    expect(await peer.request({ type: "subscribe", events: ["weather"] })).toMatchObject({ type: "error", code: "invalid" });
  });
});

// Two instances on one Postgres: events of presences on the other instance,
// and `left` for the presences of one that dies.
describe.skipIf(!process.env.DATABASE_URL)("presence events across instances", () => {
  test("joined, status and left from the other instance; a SIGKILLed instance's presences leave when reaped", async () => {
    const shared = await postgresBackend(process.env.DATABASE_URL ?? "");
    // Short enough that the SIGKILLed instance is reaped within seconds; long
    // enough that a live one on a loaded machine is not (3 s was not, elsewhere).
    const env = { ...shared.env, ADMIN_TOKEN: TEST_ADMIN_TOKEN, INSTANCE_LEASE_SECONDS: "5" };
    const [a, b] = await Promise.all([spawnBroker(env), spawnBroker(env)]);
    const peers = new PeerPool();
    try {
      const { mesh, members } = await setupMesh(new AdminClient(a.url, TEST_ADMIN_TOKEN), { members: ["watcher", "dave", "erin"] });
      const [watcher, dave, erin] = members as [SetupMember, SetupMember, SetupMember];
      const w = await peers.connect(a.wsUrl, watcher, mesh.id);
      await subscribe(w);
      await nextEvent(w, "joined", "watcher");
      const d = await peers.connect(b.wsUrl, dave, mesh.id);
      await nextEvent(w, "joined", "dave");
      await d.request({ type: "set_status", status: "working" });
      expect((await nextEvent(w, "status", "dave")).status).toBe("working");
      await d.close();
      await nextEvent(w, "left", "dave");

      const e = await peers.connect(b.wsUrl, erin, mesh.id);
      await nextEvent(w, "joined", "erin");
      b.kill("SIGKILL");
      expect((await nextEvent(w, "left", "erin", 30_000)).presenceId).toBe(e.helloAck?.presenceId);
    } finally {
      await peers.closeAll();
      await Promise.all([a.stop(), b.stop()]);
      await shared.dispose();
    }
  });

  test("a member revoked while the instance holding its socket is frozen leaves at once", async () => {
    const shared = await postgresBackend(process.env.DATABASE_URL ?? "");
    const env = { ...shared.env, ADMIN_TOKEN: TEST_ADMIN_TOKEN };
    const [a, b] = await Promise.all([spawnBroker(env), spawnBroker(env)]);
    const peers = new PeerPool();
    try {
      const admin = new AdminClient(a.url, TEST_ADMIN_TOKEN);
      const { mesh, members } = await setupMesh(admin, { members: ["watcher", "frank"] });
      const [watcher, frank] = members as [SetupMember, SetupMember];
      const w = await peers.connect(a.wsUrl, watcher, mesh.id);
      await subscribe(w);
      await nextEvent(w, "joined", "watcher");
      const f = await peers.connect(b.wsUrl, frank, mesh.id);
      await nextEvent(w, "joined", "frank");
      // Frozen, b can neither close frank's socket nor say it left; the revocation itself does.
      b.kill("SIGSTOP");
      try {
        await admin.revokeMember(mesh.id, frank.id);
        expect((await nextEvent(w, "left", "frank")).presenceId).toBe(f.helloAck?.presenceId);
      } finally {
        b.kill("SIGCONT");
      }
      expect(events(w).filter((ev) => ev.displayName === "frank").map(summary)).toEqual(["joined frank idle", "left frank idle"]);
    } finally {
      await peers.closeAll();
      await Promise.all([a.stop(), b.stop()]);
      await shared.dispose();
    }
  });
});
