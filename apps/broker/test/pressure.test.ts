// A slow or stalled reader: nothing acked is lost, per-sender order holds,
// nothing waits for a lease to run out, memory stays bounded. The slow
// reader is a real TCP socket that stops reading, so the broker meets real
// backpressure. (pressure-writer.test.ts: a peer that writes faster than the
// broker can take.)
import { afterEach, describe, expect, test } from "bun:test";
import {
  ackAll,
  filler,
  firstPushes,
  PeerPool,
  pushesOf,
  readUntilAll,
  rssOf as rss,
  setupMesh,
  TestBroker,
  useTestBroker,
  waitUntil,
  type SetupMember,
} from "@switchboard/testkit";
import { scrape, sendFrame, sendMany, str } from "./support/messaging.ts";
import { checkMemory, expectGrowthBelow, rawPresence } from "./support/pressure.ts";

const pool = new PeerPool();
afterEach(() => pool.closeAll());

const body = filler;

describe("a reader that stops reading (SOCKET_BUFFER_BYTES=262144, LEASE_SECONDS=3600)", () => {
  const broker = useTestBroker({
    SOCKET_BUFFER_BYTES: "262144",
    // No push may come back by its lease running out within this test.
    LEASE_SECONDS: "3600",
    STALLED_PRESENCE_SECONDS: "3600",
  });

  test("every acked message arrives once it reads again, in per-sender order, none by a lease running out", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 3 });
    const [a, b, c] = members as [SetupMember, SetupMember, SetupMember];
    const sender = await pool.connect(broker.wsUrl, a, mesh.id);
    // Where memory is checked, the same traffic to a reader that keeps up
    // first (another member, so the stalled socket's kernel buffers do not
    // grow with it): the broker's heap grows to its working size, garbage not
    // yet collected included, so what follows measures what the stall adds.
    if (checkMemory) {
      const keepingUp = await rawPresence(broker, mesh.id, c);
      const warmUp = (await sendMany(sender, Array.from({ length: 300 }, () => sendFrame(c.pubkey, { ciphertext: body(60_000) })), 120_000)).map((ack) => str(ack.messageId));
      await readUntilAll(keepingUp, warmUp, 120_000);
      keepingUp.destroy();
    }
    const reader = await rawPresence(broker, mesh.id, b);
    reader.pause();
    const rssBefore = rss(broker.process.pid);

    // More than the kernel's socket buffers and a whole push window's worth
    // of buffering hold (the broker once dropped pushes past that silently),
    // then many small ones.
    const frames = [
      ...Array.from({ length: 600 }, () => sendFrame(b.pubkey, { ciphertext: body(60_000) })),
      ...Array.from({ length: 2000 }, () => sendFrame(b.pubkey, { ciphertext: body(4096) })),
    ];
    const acks = await sendMany(sender, frames, 120_000);
    expect(acks.every((ack) => ack.type === "ack")).toBe(true);
    const sent = acks.map((ack) => str(ack.messageId));

    // The broker met the backed-up socket and stopped pushing to it.
    await waitUntil(
      async () => ((await scrape(broker.url)).get("broker_presences_congested") ?? 0) > 0,
      60_000,
      "the reader's presence to be congested",
    );
    const grew = rss(broker.process.pid) - rssBefore;

    reader.resume();
    await readUntilAll(reader, sent, 120_000);
    expect(firstPushes(reader)).toEqual(sent);
    // The broker did not hold the ~44 MB sent to the stalled reader several
    // times over (garbage of the sends included); bun run bench robust
    // reports the figure.
    expectGrowthBelow(grew, 128 * 1024 * 1024);
    reader.destroy();
  });

  test("a backed-up presence gets nothing new while another presence of the member keeps receiving, none by a lease", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const stuck = await rawPresence(broker, mesh.id, b);
    stuck.pause();
    const sender = await pool.connect(broker.wsUrl, a, mesh.id);
    const first = await sendMany(sender, Array.from({ length: 300 }, () => sendFrame(b.pubkey, { ciphertext: body(60_000) })), 120_000);
    await waitUntil(
      async () => ((await scrape(broker.url)).get("broker_presences_congested") ?? 0) > 0,
      60_000,
      "the stuck presence to be congested",
    );
    // Connected only now: the stuck one was the only presence the first sends could go to.
    const healthy = await pool.connect(broker.wsUrl, b, mesh.id, { autoAck: true });
    // Sent once it is backed up: every one of these must reach the healthy presence.
    const later = (await sendMany(sender, Array.from({ length: 50 }, () => sendFrame(b.pubkey)))).map((ack) => str(ack.messageId));
    await healthy.waitForPushes(1, 10_000);
    await waitUntil(() => later.every((id) => healthy.pushes().some((p) => p.messageId === id)), 60_000, "the later messages at the healthy presence");
    stuck.resume();
    // What the stuck presence had taken before it backed up reaches it once it reads.
    const all = [...first.map((ack) => str(ack.messageId)), ...later];
    const reached = () => new Set([...healthy.pushes().map((p) => str(p.messageId)), ...pushesOf(stuck).map((p) => p.messageId)]);
    const acked = new Set<string>();
    await stuck.waitFor(
      () => {
        ackAll(stuck, acked);
        return all.every((id) => reached().has(id)) ? true : undefined;
      },
      120_000,
      "every message at one of the two presences",
    );
    expect(pushesOf(stuck).filter((p) => later.includes(p.messageId))).toEqual([]);
    stuck.destroy();
  });

  test("an ephemeral message counts only a socket that took it: a backed-up one is passed over", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const stuck = await rawPresence(broker, mesh.id, b);
    const sender = await pool.connect(broker.wsUrl, a, mesh.id);
    expect((await sender.send(b.pubkey, { ephemeral: true })).recipients).toBe(1);
    stuck.pause();
    await sendMany(sender, Array.from({ length: 300 }, () => sendFrame(b.pubkey, { ciphertext: body(60_000) })), 120_000);
    await waitUntil(
      async () => ((await scrape(broker.url)).get("broker_presences_congested") ?? 0) > 0,
      60_000,
      "the presence to be congested",
    );
    expect((await sender.send(b.pubkey, { ephemeral: true })).recipients).toBe(0);
    stuck.destroy();
  });

  test("a stalled reader is closed with 1013 after STALLED_PRESENCE_SECONDS; on reconnect it gets the rest, in order", async () => {
    const stalled = await TestBroker.start({
      SOCKET_BUFFER_BYTES: "262144",
      LEASE_SECONDS: "3600",
      STALLED_PRESENCE_SECONDS: "2",
      SWEEP_INTERVAL_MS: "200",
    });
    try {
      const ownAdmin = stalled.admin;
      const { mesh, members } = await setupMesh(ownAdmin, { members: 2 });
      const [a, b] = members as [SetupMember, SetupMember];
      const reader = await rawPresence(stalled, mesh.id, b);
      reader.pause();
      const sender = await pool.connect(stalled.wsUrl, a, mesh.id);
      const acks = await sendMany(sender, Array.from({ length: 200 }, () => sendFrame(b.pubkey, { ciphertext: body(30_000) })), 60_000);
      const sent = acks.map((ack) => str(ack.messageId));
      // The broker gives up on it: its presence ends.
      await waitUntil(
        async () => ((await ownAdmin.peers(mesh.id)).some((p) => p.pubkey === b.pubkey) ? undefined : true),
        30_000,
        "the stalled presence to end",
      );
      reader.resume();
      await reader.waitFor(() => reader.close ?? undefined, 30_000, "the close frame");
      expect(reader.close).toEqual({ code: 1013, reason: "stalled" });
      const got = new Set(pushesOf(reader).map((p) => p.messageId));
      reader.destroy();

      const again = await rawPresence(stalled, mesh.id, b);
      const acked = new Set<string>();
      await again.waitFor(
        () => {
          ackAll(again, acked);
          return sent.every((id) => acked.has(id) || got.has(id)) ? true : undefined;
        },
        60_000,
        "the rest after the reconnect",
      );
      const rest = pushesOf(again).map((p) => p.messageId);
      const expected = sent.filter((id) => rest.includes(id));
      expect([...new Set(rest)]).toEqual(expected);
      again.destroy();
    } finally {
      await stalled.dispose();
    }
  });
});

describe("a reader backed up by replies alone (SOCKET_BUFFER_BYTES=67108864, STALLED_PRESENCE_SECONDS=2)", () => {
  const broker = useTestBroker({
    SOCKET_BUFFER_BYTES: "67108864",
    STALLED_PRESENCE_SECONDS: "2",
    SWEEP_INTERVAL_MS: "200",
    CONTROL_RATE_LIMIT_PER_MIN: "100000",
    SEND_RATE_LIMIT_PER_MIN: "100000",
  });

  test("history pages it does not read mark it backed up: a send passes it over, and it is closed with 1013 after STALLED_PRESENCE_SECONDS", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["a", "b"] });
    const [a, b] = members as [SetupMember, SetupMember];
    // Channel messages of the reader's own member: none is pushed to it.
    const writer = await pool.connect(broker.wsUrl, a, mesh.id);
    await writer.request({ type: "join", channel: "#big" });
    await sendMany(writer, Array.from({ length: 20 }, () => sendFrame("#big", { ciphertext: body(60_000) })), 60_000);
    const reader = await rawPresence(broker, mesh.id, a);
    reader.pause();
    const congested = async () => ((await scrape(broker.url)).get("broker_presences_congested") ?? 0) > 0;
    // Pages of about a megabyte, one at a time, until the socket holds one
    // unsent: the kernel's buffers take the first few. Its buffer is large
    // enough that none is dropped (a dropped reply closes it at once).
    let asked = 0;
    for (; asked < 40 && !(await congested()); asked++) {
      reader.sendJson({ type: "history", target: "#big", limit: 200, reqId: `h-${asked}` });
      await Bun.sleep(100);
    }
    expect(await congested()).toBe(true);
    // Backed up, it is passed over by a send as by a claim: a message to its
    // member, which has no other socket now, stays queued.
    await writer.close();
    const other = await pool.connect(broker.wsUrl, b, mesh.id);
    const direct = str((await other.send(a.pubkey)).messageId);
    const status = await broker.admin.raw("GET", `/v1/messages/${direct}`);
    expect(((await status.json()) as { recipients: Array<{ state: string }> }).recipients.map((r) => r.state)).toEqual(["queued"]);
    await waitUntil(
      async () => ((await broker.admin.peers(mesh.id)).some((p) => p.pubkey === a.pubkey) ? undefined : true),
      30_000,
      `the reader's presence to end (after ${asked} pages asked)`,
    );
    reader.resume();
    await reader.waitFor(() => reader.close ?? undefined, 30_000, "the close frame");
    expect(reader.close).toEqual({ code: 1013, reason: "stalled" });
    reader.destroy();
  });
});

describe("presence events to a reader that stopped reading (SOCKET_BUFFER_BYTES=65536)", () => {
  const broker = useTestBroker({
    SOCKET_BUFFER_BYTES: "65536",
    LEASE_SECONDS: "3600",
    STALLED_PRESENCE_SECONDS: "3600",
    CONTROL_RATE_LIMIT_PER_MIN: "100000",
  });

  test("one its socket drops ends the presence: its picture of the mesh would otherwise be wrong for good", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 3 });
    const [a, b, c] = members as [SetupMember, SetupMember, SetupMember];
    const stuck = await rawPresence(broker, mesh.id, b);
    stuck.sendJson({ type: "subscribe", reqId: "s-1", events: ["presence"] });
    await stuck.waitFor(() => (stuck.messages.some((m) => m.includes('"reqId":"s-1"')) ? true : undefined), 10_000, "the subscription's ack");
    stuck.pause();
    const sender = await pool.connect(broker.wsUrl, a, mesh.id);
    // The kernel's buffers filled by pushes, then the socket's own.
    await sendMany(sender, Array.from({ length: 300 }, () => sendFrame(b.pubkey, { ciphertext: body(60_000) })), 120_000);
    await waitUntil(
      async () => ((await scrape(broker.url)).get("broker_presences_congested") ?? 0) > 0,
      60_000,
      "the stuck presence to be congested",
    );
    // Status events for it, more than its socket may hold unsent.
    const changer = await pool.connect(broker.wsUrl, c, mesh.id);
    const gone = async () => !(await broker.admin.peers(mesh.id)).some((p) => p.pubkey === b.pubkey);
    let changes = 0;
    for (; changes < 2000 && (changes % 50 !== 0 || !(await gone())); changes++) {
      await changer.request({ type: "set_status", status: changes % 2 === 0 ? "working" : "idle" });
    }
    // The events are read and offered behind the changes: on a loaded machine well behind.
    await waitUntil(() => gone().then((yes) => yes || undefined), 60_000, `the stuck presence ended (after ${changes} status changes)`);
    stuck.destroy();
  });
});
