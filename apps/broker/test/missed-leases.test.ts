// A send statement leases a delivery to its recipient's presence on another
// instance and names it in its NOTIFY; that notice is its only news. Here the
// recipient's instance loses it: its connections to Postgres pass through
// the test proxy, which holds them still while the server ends them, so the
// notice goes out while that instance listens on no connection. Once the bus
// listens again, the delivery is pushed at once, not when its 600 s lease
// runs out (services/delivery/missed-leases.ts); pushes the recipient
// already has, its ack of them failed or not, are not pushed again.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { backendKind, PeerPool, pushesBeforeMarker, setupMesh, TestBroker, waitUntil, type Frame, type SetupMember } from "@switchboard/testkit";
import postgres from "postgres";
import { brokerBehindProxy, type BrokerBehindProxy } from "./support/behind-proxy.ts";

const ENV = { LEASE_SECONDS: "600" };
const RECOVERED = "looked for deliveries leased here whose notices were missed";
/** Text of the recovery's read (store/queue/claim.ts, leasesOf), sent as a new connection prepares it. */
const LEASES_READ = "SELECT id, message_id, lease_expires_at FROM deliveries";
/** Text of the read a notice's deliveries take (store/queue/claim.ts, readLeases). */
const NOTICE_READ = "SELECT id, message_id, recipient_member_id, lease_presence_id, attempt, state FROM deliveries";

describe.skipIf(backendKind !== "postgres")("a notice lost while the bus was away (needs DATABASE_URL)", () => {
  /** The recipients' instance, behind the proxy. */
  let behind: BrokerBehindProxy;
  /** The senders' instance, connected to the server itself. */
  let front: TestBroker;
  let db: postgres.Sql;
  const peers = new PeerPool();
  beforeAll(async () => {
    behind = await brokerBehindProxy(ENV);
    front = await TestBroker.start(ENV, { backend: behind.backend });
    db = postgres(behind.databaseUrl, { max: 1, onnotice: () => {} });
  });
  // Each test's recovery lists the leases of its own peers alone.
  afterEach(() => peers.closeAll());
  afterAll(async () => {
    await peers.closeAll();
    await db?.end();
    await front?.dispose();
    await behind?.dispose();
  });

  const ids = (pushes: Frame[]) => pushes.map((p) => String(p.messageId));

  async function senderAndRecipient(autoAck: boolean) {
    const { mesh, members } = await setupMesh(front.admin, { members: ["sender", "recipient"] });
    const [senderM, recipientM] = members as [SetupMember, SetupMember];
    const sender = await peers.connect(front.wsUrl, senderM, mesh.id);
    const recipient = await peers.connect(behind.broker.wsUrl, recipientM, mesh.id, { autoAck });
    return { sender, recipient, recipientKey: recipientM.pubkey };
  }

  async function send(sender: Awaited<ReturnType<typeof senderAndRecipient>>["sender"], to: string): Promise<string> {
    const ack = await sender.send(to);
    expect(ack).toMatchObject({ type: "ack", queued: true, recipients: 1 });
    return String(ack.messageId);
  }

  /**
   * The server ends the recipients' instance's connections while the proxy
   * holds them still: that instance hears nothing, and connects again only
   * once `whileAway` is done.
   */
  async function busAway(whileAway: () => Promise<void>): Promise<void> {
    const ports = behind.proxy.upstreamPorts();
    behind.proxy.stall();
    try {
      const ended = await db<Array<{ ended: boolean }>>`
        SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
        WHERE datname = current_database() AND client_port = ANY (${ports}::int[])`;
      // Its pool's and its listening connection.
      expect(ended.length).toBeGreaterThanOrEqual(2);
      expect(ended.every((e) => e.ended)).toBe(true);
      await whileAway();
    } finally {
      behind.proxy.resume();
    }
  }

  const recoveries = () => behind.broker.process.logs.filter((l) => l.msg === RECOVERED);

  test("a delivery whose notice was lost is pushed once the bus listens again, once", async () => {
    const { sender, recipient, recipientKey } = await senderAndRecipient(true);
    const first = await send(sender, recipientKey);
    await recipient.waitForPushes(1, 15_000);
    const before = recoveries().length;
    let lost = "";
    await busAway(async () => {
      lost = await send(sender, recipientKey);
      // Leased by the send itself to the recipient's one presence, on the other instance.
      const [row] = await db<Array<{ state: string; held: boolean }>>`
        SELECT state, lease_presence_id IS NOT NULL AS held FROM deliveries WHERE message_id = ${lost}::uuid`;
      expect(row).toEqual({ state: "leased", held: true });
    });
    // Sent as the bus comes back: it goes out after the one sent before it.
    const next = await send(sender, recipientKey);
    expect(ids(await recipient.waitForPushes(3, 30_000))).toEqual([first, lost, next]);
    await waitUntil(() => recoveries().length > before || undefined, 15_000, "the recovery's log");
    expect(recoveries().slice(before).some((l) => Number(l.deliveries) >= 1)).toBe(true);
    expect(ids(await pushesBeforeMarker(sender, recipient))).toEqual([first, lost, next]);
  });

  test("pushes awaiting their ack when the bus comes back are not pushed again", async () => {
    const { sender, recipient, recipientKey } = await senderAndRecipient(false);
    const sent = [await send(sender, recipientKey), await send(sender, recipientKey), await send(sender, recipientKey)];
    expect(ids(await recipient.waitForPushes(3, 15_000))).toEqual(sent);
    const before = recoveries().length;
    await busAway(async () => {});
    await waitUntil(() => recoveries().length > before || undefined, 30_000, "the recovery's log");
    // Listed, and left alone (by every recovery, should the bus have come back more than once).
    expect(recoveries().slice(before).some((l) => l.leases === 3)).toBe(true);
    expect(recoveries().slice(before).every((l) => l.deliveries === 0)).toBe(true);
    recipient.ack(sent);
    expect(ids(await pushesBeforeMarker(sender, recipient))).toEqual(sent);
  });

  // A restart of the server ends the pool's connections with the listener's;
  // the pool learns of each as its socket closes, and the recovery may send
  // its read on one it has not heard of yet. Its read and renewal change
  // nothing when run again, so they run again on another connection.
  test("a recovery whose read meets a connection the server ended reads again, and pushes the delivery it missed", async () => {
    const { sender, recipient, recipientKey } = await senderAndRecipient(true);
    const first = await send(sender, recipientKey);
    await recipient.waitForPushes(1, 15_000);
    const before = recoveries().length;
    const terminated = behind.proxy.terminated;
    // Only the recovery's read of the leases held here carries this text.
    behind.proxy.terminateOn(LEASES_READ);
    let lost = "";
    await busAway(async () => {
      lost = await send(sender, recipientKey);
    });
    expect(ids(await recipient.waitForPushes(2, 30_000))).toEqual([first, lost]);
    await waitUntil(() => recoveries().length > before || undefined, 15_000, "the recovery's log");
    expect(behind.proxy.terminated).toBe(terminated + 1);
    expect(recoveries().slice(before).some((l) => Number(l.deliveries) >= 1)).toBe(true);
    expect(ids(await pushesBeforeMarker(sender, recipient))).toEqual([first, lost]);
  });

  test("a notice whose read meets a connection the server ended reads again: its delivery is pushed, not left to its lease", async () => {
    const { sender, recipient, recipientKey } = await senderAndRecipient(true);
    const first = await send(sender, recipientKey);
    await recipient.waitForPushes(1, 15_000);
    // Every connection is new once the bus is back: the first read of a notice's deliveries prepares its text on one.
    const before = recoveries().length;
    await busAway(async () => {});
    await waitUntil(() => recoveries().length > before || undefined, 30_000, "the recovery's log");
    const terminated = behind.proxy.terminated;
    behind.proxy.terminateOn(NOTICE_READ);
    const next = await send(sender, recipientKey);
    expect(ids(await recipient.waitForPushes(2, 30_000))).toEqual([first, next]);
    expect(behind.proxy.terminated).toBe(terminated + 1);
    expect(ids(await pushesBeforeMarker(sender, recipient))).toEqual([first, next]);
  });

  test("a push whose ack failed still awaits its ack: the bus coming back does not push it again", async () => {
    const { sender, recipient, recipientKey } = await senderAndRecipient(false);
    const id = await send(sender, recipientKey);
    await recipient.waitForPushes(1, 15_000);
    // The ack's statement carries the message id: its connection ends before the server sees it.
    behind.proxy.terminateOn(id);
    const failures = recipient.frames.filter((f) => f.type === "error").length;
    recipient.ack([id]);
    await waitUntil(() => recipient.frames.filter((f) => f.type === "error").length > failures || undefined, 15_000, "the ack refused");
    expect(recipient.frames.filter((f) => f.type === "error").at(-1)).toMatchObject({ code: "internal" });
    const before = recoveries().length;
    await busAway(async () => {});
    await waitUntil(() => recoveries().length > before || undefined, 30_000, "the recovery's log");
    expect(recoveries().slice(before).some((l) => l.leases === 1)).toBe(true);
    expect(recoveries().slice(before).every((l) => l.deliveries === 0)).toBe(true);
    recipient.ack([id]);
    expect(ids(await pushesBeforeMarker(sender, recipient))).toEqual([id]);
  });
});
