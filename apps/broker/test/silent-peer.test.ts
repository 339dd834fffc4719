// A peer gone silent without a close (SILENT_PEER_SECONDS): what the broker
// writes to it does not keep it alive. A half-open connection the broker
// kept pushing a lease's redelivery into lived on for good, holding its
// member's message from the member's next session; now only what the peer
// sends counts, and a quiet peer that still answers the broker's pings stays.
import { afterAll, describe, expect, test } from "bun:test";
import {
  backendKind,
  holdOnInsert,
  setupMesh,
  startTcpProxy,
  TestPeer,
  useTestBroker,
  waitUntil,
  type SetupMember,
  type TcpProxy,
} from "@switchboard/testkit";
import { scrape } from "./support/messaging.ts";

// Leases of a second: the push into the frozen socket comes again each second.
// Eight frames under way per connection: a ninth stops the broker reading it.
const broker = useTestBroker({ SILENT_PEER_SECONDS: "2", LEASE_SECONDS: "1", CONNECTION_INFLIGHT_FRAMES: "8" });
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function peer(url: string, member: SetupMember, meshId: string, sessionId: string): Promise<TestPeer> {
  const p = await TestPeer.connect(url, { identity: member.identity, meshId, sessionId });
  cleanups.push(() => p.close());
  return p;
}

describe("a peer that sends nothing", () => {
  test("a half-open peer owed a message is dropped, and the member's next session gets the message", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const proxy: TcpProxy = await startTcpProxy(Number(new URL(broker.url).port));
    cleanups.push(() => proxy.close());
    const frozen = await peer(`ws://127.0.0.1:${proxy.port}/ws`, alice, mesh.id, "laptop");
    const from = await peer(broker.wsUrl, bob, mesh.id, "bob");
    const silentBefore = (await scrape(broker.url)).get("broker_connections_silent_total") ?? 0;

    const ack = await from.send(alice.pubkey);
    await frozen.waitForPushes(1);
    proxy.freezeOpen();
    await waitUntil(
      async () => !(await broker.admin.peers(mesh.slug)).some((p) => p.sessionId === "laptop") || undefined,
      20_000,
      "the frozen session's presence to end",
    );
    expect((await scrape(broker.url)).get("broker_connections_silent_total")).toBe(silentBefore + 1);

    const next = await peer(broker.wsUrl, alice, mesh.id, "desk");
    const [push] = await next.waitForPushes(1);
    expect(push?.messageId).toBe(ack.messageId);
  });

  test("a quiet peer that answers the broker's pings stays", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["carol", "dave"] });
    const [carol, dave] = members as [SetupMember, SetupMember];
    const quiet = await peer(broker.wsUrl, carol, mesh.id, "quiet");
    // Three times the bound without a frame of its own: only its pongs speak for it.
    await Bun.sleep(6_000);
    expect((await broker.admin.peers(mesh.slug)).map((p) => p.sessionId)).toContain("quiet");
    const from = await peer(broker.wsUrl, dave, mesh.id, "dave");
    const ack = await from.send(carol.pubkey);
    const [push] = await quiet.waitForPushes(1);
    expect(push?.messageId).toBe(ack.messageId);
  });
});

describe("a broker that stood still", () => {
  test("does not take its peers for silent when it runs again: what they sent meanwhile is read after its first look", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["gina", "hal"] });
    const [gina, hal] = members as [SetupMember, SetupMember];
    const quiet = await peer(broker.wsUrl, gina, mesh.id, "gina");
    process.kill(broker.process.pid, "SIGSTOP");
    try {
      await Bun.sleep(3_000);
    } finally {
      process.kill(broker.process.pid, "SIGCONT");
    }
    // Its next looks, a quarter of the bound apart, ping the peer afresh; it answers.
    await Bun.sleep(1_500);
    expect(quiet.isOpen).toBe(true);
    const from = await peer(broker.wsUrl, hal, mesh.id, "hal");
    const ack = await from.send(gina.pubkey);
    const [push] = await quiet.waitForPushes(1);
    expect(push?.messageId).toBe(ack.messageId);
  });
});

describe.skipIf(backendKind !== "postgres")("a peer the broker stopped reading", () => {
  test("is not taken for silent while its frames wait for the database: its pongs are not read either", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["erin", "frank"] });
    const [erin, frank] = members as [SetupMember, SetupMember];
    const sender = await peer(broker.wsUrl, erin, mesh.id, "erin");
    const ciphertext = Buffer.from(`held ${crypto.randomUUID()}`).toString("base64");
    const hold = await holdOnInsert(broker.backend.databaseUrl!, { messageCiphertext: ciphertext });
    let released: Promise<void> | undefined;
    const release = () => (released ??= hold.release());
    cleanups.push(release);
    const sent = sender.send(frank.pubkey, { ciphertext });
    // Behind the held send, past the connection's eight frames under way: the broker stops reading the socket.
    const pinged = Array.from({ length: 9 }, () => sender.request({ type: "ping" }, 30_000));
    await Bun.sleep(6_000);
    await release();
    expect(await sent).toMatchObject({ type: "ack", queued: true });
    for (const pong of await Promise.all(pinged)) expect(pong).toMatchObject({ type: "pong" });
    expect(sender.isOpen).toBe(true);
  });
});
