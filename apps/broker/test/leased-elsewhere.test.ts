// A send statement leases a delivery to its recipient's presence on another
// instance too, and names it in its NOTIFY; that instance reads it and pushes
// it, with no claim (store/queue/enqueue.ts, delivery/leased-elsewhere.ts).
// On two instances sharing a Postgres server: such deliveries are leased by
// the send's own transaction, go out in their order, respect the push
// window, and one leased to a presence its instance no longer holds goes back
// to the queue at once, not when its lease runs out.
import { describe, expect, test } from "bun:test";
import {
  backendKind,
  pushesBeforeMarker,
  setupMesh,
  TestPeer,
  waitUntil,
  type Frame,
  type SetupMember,
  type TestBroker,
} from "@switchboard/testkit";
import { EVERY_DELIVERY } from "./support/acked.ts";
import { usePairWithDatabase } from "./support/pair-database.ts";
import { SHORT_INSTANCE_LEASE, whileOneIsStopped } from "./support/stopped-instance.ts";

// Long enough that a lease left to run out would outlast every wait below.
const LEASE_SECONDS = 600;
const WINDOW = 512;

describe.skipIf(backendKind !== "postgres")("deliveries leased to a presence on another instance (needs DATABASE_URL)", () => {
  const pair = usePairWithDatabase({ LEASE_SECONDS: String(LEASE_SECONDS), SEND_RATE_LIMIT_PER_MIN: "100000" });
  const { peers } = pair;

  async function connect(broker: TestBroker, member: SetupMember, meshId: string, autoAck: boolean): Promise<TestPeer> {
    const peer = await TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId, autoAck });
    peers.push(peer);
    return peer;
  }

  /** A sender on a and a recipient on b, in a mesh of their own. */
  async function senderAndRecipient(autoAck: boolean) {
    const { mesh, members } = await setupMesh(pair.a.admin, { members: ["sender", "recipient"] });
    const [senderM, recipientM] = members as [SetupMember, SetupMember];
    const sender = await connect(pair.a, senderM, mesh.id, false);
    const recipient = await connect(pair.b, recipientM, mesh.id, autoAck);
    return { mesh, senderM, recipientM, sender, recipient };
  }

  /** Sends `count` messages at once (each frame waits for none of the acks); their ids in send order. */
  async function burst(sender: TestPeer, to: string, count: number): Promise<string[]> {
    const acks = await Promise.all(Array.from({ length: count }, () => sender.send(to)));
    return acks.map((a) => {
      expect(a).toMatchObject({ type: "ack", queued: true, recipients: 1 });
      return String(a.messageId);
    });
  }

  const ids = (pushes: Frame[]) => pushes.map((p) => String(p.messageId));

  /** How many of these messages' deliveries are in each state. */
  async function statesOf(messageIds: string[]): Promise<Record<string, number>> {
    const rows = await pair.sql<Array<{ state: string; n: number }>>`
      SELECT state, count(*)::int AS n FROM ${pair.sql.unsafe(EVERY_DELIVERY)} d WHERE message_id = ANY (${messageIds}::uuid[]) GROUP BY state`;
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  test("sends to a peer on the other instance are leased by their own statements, and pushed", async () => {
    const { sender, recipientM, recipient } = await senderAndRecipient(true);
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) sent.push(...(await burst(sender, recipientM.pubkey, 1)));
    expect(ids(await recipient.waitForPushes(20, 30_000))).toEqual(sent);
    // Leased in the transaction that wrote them (its now() is the message's
    // created_at); a claim would have leased them in one of its own.
    const [row] = await pair.sql<Array<{ bySend: number; all: number }>>`
      SELECT count(*) FILTER (WHERE d.delivered_at = m.created_at)::int AS "bySend", count(*)::int AS all
      FROM ${pair.sql.unsafe(EVERY_DELIVERY)} d JOIN messages m ON m.id = d.message_id
      WHERE d.message_id = ANY (${sent}::uuid[])`;
    expect(row).toEqual({ bySend: 20, all: 20 });
  });

  test("a burst goes out in order, once", async () => {
    const { sender, recipientM, recipient } = await senderAndRecipient(true);
    const sent = await burst(sender, recipientM.pubkey, 600);
    const pushed = ids(await recipient.waitForPushes(600, 30_000));
    expect(pushed).toEqual(sent);
    // Nothing more before a message sent after them all.
    expect(ids(await pushesBeforeMarker(sender, recipient))).toEqual(sent);
  });

  test("a direct message and a broadcast right behind it, both to a peer on the other instance, arrive in that order", async () => {
    const { mesh, members } = await setupMesh(pair.a.admin, { members: 40 });
    const [senderM, recipientM] = members as [SetupMember, SetupMember];
    const sender = await connect(pair.a, senderM, mesh.id, false);
    const recipient = await connect(pair.b, recipientM, mesh.id, true);
    for (let round = 0; round < 10; round++) {
      const [direct, broadcast] = await Promise.all([sender.send(recipientM.pubkey), sender.send("*")]);
      expect(broadcast).toMatchObject({ recipients: 39 });
      const pushed = await recipient.waitForPushes(2 * (round + 1), 15_000);
      expect(ids(pushed.slice(-2))).toEqual([String(direct.messageId), String(broadcast.messageId)]);
    }
  });

  test("past the push window the rest waits in the queue, and follows in order once the window is acked", async () => {
    const { sender, recipientM, recipient } = await senderAndRecipient(false);
    const sent = await burst(sender, recipientM.pubkey, WINDOW + 88);
    const first = await recipient.waitForPushes(WINDOW, 30_000);
    expect(ids(first)).toEqual(sent.slice(0, WINDOW));
    // Nothing past the window, once the queue's rows have settled at a full
    // window leased (what a send leased past it went back to the queue).
    await waitUntil(
      async () => Bun.deepEquals(await statesOf(sent), { leased: WINDOW, queued: 88 }) || undefined,
      30_000,
      "a full window leased, the rest queued",
    );
    expect(recipient.pushes().length).toBe(WINDOW);
    recipient.ack(sent.slice(0, WINDOW));
    const all = await recipient.waitForPushes(WINDOW + 88, 30_000);
    expect(ids(all)).toEqual(sent);
  });

  test("a delivery leased to a presence its instance does not hold goes back to the queue at once", async () => {
    const { mesh, members } = await setupMesh(pair.a.admin, { members: ["sender", "recipient"] });
    const [senderM, recipientM] = members as [SetupMember, SetupMember];
    const sender = await connect(pair.a, senderM, mesh.id, false);
    // A live presence row of the recipient on b with no socket there: what b
    // has once a socket closed and before its end is written.
    const health = (await (await fetch(`${pair.b.url}/health`)).json()) as { instanceId: string };
    await pair.sql`
      INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
      VALUES (${mesh.id}, ${recipientM.id}, ${health.instanceId}, 'socketless', 'recipient')`;
    const [id] = await burst(sender, recipientM.pubkey, 1);
    // b hands it back: queued again, not leased until the lease runs out.
    await waitUntil(async () => (await statesOf([id!])).queued === 1 || undefined, 15_000, "the delivery back in the queue");
    const recipient = await connect(pair.a, recipientM, mesh.id, true);
    expect(await recipient.nextFrame((f) => f.type === "push" && f.messageId === id, 15_000)).toMatchObject({ senderPubkey: senderM.pubkey });
  });
});

describe.skipIf(backendKind !== "postgres")("a delivery to a recipient on a live instance and on one that stopped (needs DATABASE_URL)", () => {
  const pair = usePairWithDatabase(SHORT_INSTANCE_LEASE);

  test("is leased to the presence on the instance that still renews its lease, and pushed there at its first attempt", async () => {
    await whileOneIsStopped(pair, async (sender, recipient, onLive) => {
      const ack = await sender.send(recipient.pubkey);
      expect(ack).toMatchObject({ type: "ack", queued: true, recipients: 1 });
      const [delivery] = await pair.sql<Array<{ presenceId: string | null }>>`
        SELECT lease_presence_id::text AS "presenceId" FROM deliveries WHERE message_id = ${String(ack.messageId)}`;
      expect(delivery?.presenceId).toBe(String(onLive.helloAck?.presenceId));
      // Leased to the stopped instance's presence, it came only after the reap put it back: a second attempt.
      const push = await onLive.nextFrame((f) => f.type === "push" && f.messageId === ack.messageId);
      expect(push.attempt).toBe(1);
    });
  });
});
