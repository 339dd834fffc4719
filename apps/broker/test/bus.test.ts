// Between instances, news of work travels by NOTIFY alone: with the catch-up
// sweep far away, a message sent on one instance still reaches a recipient
// on another at once, whether the send named it directly or by broadcast to
// more members than one notification lists by id, or a push handed back to
// the queue makes it claimable again; a session's replacement tells the
// instance holding the old socket, but only for a hello whose socket is still
// there, and takes that socket's leases back itself, so nothing sent after it
// overtakes them.
import { afterEach, describe, expect, test } from "bun:test";
import {
  backendKind,
  buildHello,
  PeerPool,
  setupMesh,
  sleepOnInsert,
  someoneSleeps,
  useTestBrokerPair,
  waitUntil,
  type SetupMember,
} from "@switchboard/testkit";
import { firstArrivals, scrape, sendFrame, sendMany, str, withSlowJoins } from "./support/messaging.ts";

const pool = new PeerPool();
afterEach(() => pool.closeAll());

describe.skipIf(backendKind !== "postgres")("notifications between instances (CATCH_UP_INTERVAL_MS=600000)", () => {
  const pair = useTestBrokerPair({ CATCH_UP_INTERVAL_MS: "600000", MAX_CONNECTIONS_PER_MESH: "1000" });

  test("a direct message sent on A is pushed to its recipient on B", async () => {
    const { a, b } = pair;
    const { mesh, members } = await setupMesh(a.admin, { members: 2 });
    const [sender, recipient] = members as [SetupMember, SetupMember];
    const on = await pool.connect(b.wsUrl, recipient, mesh.id);
    const from = await pool.connect(a.wsUrl, sender, mesh.id);
    const ack = await from.send(recipient.pubkey);
    const [push] = await on.waitForPushes(1, 10_000);
    expect(push?.messageId).toBe(ack.messageId);
  });

  test("a broadcast to 160 members on B (more than one notification lists by id) reaches every one", async () => {
    const { a, b } = pair;
    const { mesh, members } = await setupMesh(a.admin, { members: 161 });
    const [sender, ...rest] = members as [SetupMember, ...SetupMember[]];
    const peers = await Promise.all(rest.map((m) => pool.connect(b.wsUrl, m, mesh.id)));
    const from = await pool.connect(a.wsUrl, sender, mesh.id);
    const ack = await from.send("*");
    expect(ack.recipients).toBe(160);
    const pushes = await Promise.all(peers.map((p) => p.waitForPushes(1, 20_000)));
    expect(pushes.map((p) => p[0]?.messageId)).toEqual(peers.map(() => ack.messageId));
  });

  test("pushes a full window hands back on A reach the member's presence on B", async () => {
    const { a, b } = pair;
    const { mesh, members } = await setupMesh(a.admin, { members: 2 });
    const [sender, recipient] = members as [SetupMember, SetupMember];
    const from = await pool.connect(a.wsUrl, sender, mesh.id);
    // Reads every push and acks none: its window of 512 fills. A send leases
    // to it directly, as it is on the sending instance.
    const holder = await pool.connect(a.wsUrl, recipient, mesh.id);
    const elsewhere = await pool.connect(b.wsUrl, recipient, mesh.id, { autoAck: true });
    const first = await sendMany(from, Array.from({ length: 508 }, () => sendFrame(recipient.pubkey)));
    await holder.waitForPushes(508, 30_000);

    // A statement held for a second by a trigger, so the ten sends behind it
    // are written together, all leased to the holder with room for four at
    // most: the rest go back to the queue, and only B can take them.
    const slow = Buffer.from("slow").toString("base64");
    const wake = await sleepOnInsert(a.backend.databaseUrl!, { messageCiphertext: slow }, 1);
    try {
      const last = await sendMany(from, [
        sendFrame(recipient.pubkey, { ciphertext: slow }),
        ...Array.from({ length: 10 }, () => sendFrame(recipient.pubkey)),
      ]);
      await waitUntil(async () => ((await scrape(a.url)).get("broker_pushes_unwritten_total") ?? 0) > 0, 10_000, "pushes handed back on A");
      const ids = [...first, ...last].map((ack) => str(ack.messageId));
      const reached = () => new Set([...holder.pushes(), ...elsewhere.pushes()].map((p) => str(p.messageId)));
      await waitUntil(() => ids.every((id) => reached().has(id)), 10_000, "every message at one of the member's presences");
      expect(elsewhere.pushes().length).toBeGreaterThan(0);
      // Handed back unwritten, they were never pushed before: their first push is attempt 1.
      expect(new Set(elsewhere.pushes().map((p) => p.attempt))).toEqual(new Set([1]));
    } finally {
      await wake();
    }
  });

  test("300 sessions of A reconnecting on B at once replace their sockets on A (more than one notification holds)", async () => {
    const { a, b } = pair;
    const { mesh, members } = await setupMesh(a.admin, { members: 300 });
    const sessions = members.map(() => crypto.randomUUID());
    const onA = await Promise.all(members.map((m, i) => pool.connect(a.wsUrl, m, mesh.id, { sessionId: sessions[i]! })));
    // Their hellos on B are admitted in a few batches, each ending as many presences on A.
    const onB = await Promise.allSettled(members.map((m, i) => pool.connect(b.wsUrl, m, mesh.id, { sessionId: sessions[i]! })));
    expect(onB.filter((r) => r.status === "rejected").map((r) => String(r.reason))).toEqual([]);
    const closes = await Promise.all(onA.map((p) => p.closed));
    expect(new Set(closes.map((c) => `${c.code} ${c.reason}`))).toEqual(new Set(["4000 replaced"]));
  });

  test("a hello whose socket went while it waited on A does not replace the session's new socket on B", async () => {
    const { a, b } = pair;
    const { mesh, members } = await setupMesh(a.admin, { members: 2 });
    const [slowMember, member] = members as [SetupMember, SetupMember];
    const slowSession = `slow-${crypto.randomUUID()}`;
    const sessionId = crypto.randomUUID();
    const databaseUrl = a.backend.databaseUrl!;
    const wake = await sleepOnInsert(databaseUrl, { presenceSession: slowSession }, 1.5);
    try {
      // A's hellos wait behind a slow one; the session's first socket gives up meanwhile.
      const slow = pool.connect(a.wsUrl, slowMember, mesh.id, { sessionId: slowSession });
      await waitUntil(() => someoneSleeps(databaseUrl), 10_000, "A's slow hello statement asleep");
      const first = new WebSocket(a.wsUrl);
      await new Promise((resolve) => first.addEventListener("open", resolve, { once: true }));
      first.send(JSON.stringify(await buildHello({ identity: member.identity, meshId: mesh.id, sessionId })));
      await Bun.sleep(100);
      first.close();
      // The peer comes back on B with the same session while A is still busy.
      const second = await pool.connect(b.wsUrl, member, mesh.id, { sessionId });
      await slow;
      // A's batch has run: the abandoned hello must not have replaced the session.
      const proof = await pool.connect(a.wsUrl, slowMember, mesh.id);
      await proof.close();
      // A replacement A tells B after that batch: once B has acted on it, B
      // has acted on anything A told it before (notifications come in commit order).
      const sentinelSession = crypto.randomUUID();
      const sentinel = await pool.connect(b.wsUrl, slowMember, mesh.id, { sessionId: sentinelSession });
      await pool.connect(a.wsUrl, slowMember, mesh.id, { sessionId: sentinelSession });
      expect(await waitUntil(() => sentinel.closeInfo, 10_000, "the sentinel replaced")).toMatchObject({ code: 4000 });
      // And a round trip on second's own socket: a close B sent it before would come first.
      expect(await second.request({ type: "ping" })).toMatchObject({ type: "pong" });
      expect(second.isOpen).toBe(true);
      expect(second.closeInfo).toBeUndefined();
    } finally {
      await wake();
    }
  });

  test("a session back on B while its socket on A holds 20 leases: messages sent right after its hello, from either instance, come after those 20", async () => {
    const { a, b } = pair;
    const { mesh, members } = await setupMesh(a.admin, { members: 3 });
    const [onA, onB, recipient] = members as [SetupMember, SetupMember, SetupMember];
    const sessionId = crypto.randomUUID();
    const fromA = await pool.connect(a.wsUrl, onA, mesh.id);
    const fromB = await pool.connect(b.wsUrl, onB, mesh.id);
    // Acks none: the 20 stay leased to its socket on A, which stays open.
    const first = await pool.connect(a.wsUrl, recipient, mesh.id, { sessionId });
    const acks = await sendMany(fromA, Array.from({ length: 20 }, () => sendFrame(recipient.pubkey)));
    await first.waitForPushes(20);

    // A ends its socket only after the frames it read: a join held 2 s. The
    // hello on B takes the leases back itself, and sends right after it
    // find them queued; left to A, they would still be leased to its socket.
    const { second, markers } = await withSlowJoins(a.backend, 2, async () => {
      first.sendFrame({ type: "join", channel: "#slow" });
      const second = await pool.connect(b.wsUrl, recipient, mesh.id, { sessionId });
      // B's presence is the recipient's only one: a send on B leases to it directly unless older work waits.
      const markers = [await fromB.request(sendFrame(recipient.pubkey)), await fromA.request(sendFrame(recipient.pubkey))];
      return { second, markers };
    });
    await waitUntil(() => firstArrivals(second.pushes()).length === 22, 20_000, "all 22 messages on B");
    expect(firstArrivals(second.pushes())).toEqual([...acks, ...markers].map((x) => str(x.messageId)));
  });
});
