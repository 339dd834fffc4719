// PROTOCOL.md §1 "push" and "client_ack", DESIGN.md invariants 1–3: leases and
// redelivery, FIFO per sender→recipient, one presence per pushed message, and
// no acked message lost when the broker is killed (SIGKILL) or stopped (SIGTERM).
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import {
  AdminClient,
  freshBackend,
  PeerPool,
  setupMesh,
  spawnBroker,
  TestPeer,
  type BrokerProcess,
  type ConnectOptions,
  type Frame,
  type SetupMember,
  type TestBackend,
} from "@switchboard/testkit";
import { firstArrivals, sendFrame, sendMany, str, waitUntil } from "./support/messaging.ts";

const ADMIN_TOKEN = "admin-secret-0123456789abcdef";
const LEASE_SECONDS = 2;

const pool = new PeerPool();
afterEach(() => pool.closeAll());

const connect = (broker: BrokerProcess, meshId: string, member: SetupMember, options: Partial<ConnectOptions> = {}) =>
  pool.connect(broker.wsUrl, member, meshId, options);

const pushesOf = (peer: TestPeer, messageId: unknown): Frame[] => peer.pushes().filter((p) => p.messageId === messageId);

describe(`leases (LEASE_SECONDS=${LEASE_SECONDS})`, () => {
  let backend: TestBackend;
  let broker: BrokerProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    backend = await freshBackend();
    broker = await spawnBroker({ ...backend.env, ADMIN_TOKEN, LEASE_SECONDS: String(LEASE_SECONDS) });
    admin = new AdminClient(broker.url, ADMIN_TOKEN);
  });
  afterAll(async () => {
    await broker?.stop();
    await backend?.dispose();
  });

  test("a push not acked is pushed again after the lease (attempt 2, same messageId); an acked one is not", async () => {
    const { mesh, members } = await setupMesh(admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, mesh.id, a);
    const recipient = await connect(broker, mesh.id, b);
    const [unacked, acked] = await sendMany(sender, [sendFrame(b.pubkey), sendFrame(b.pubkey)]);
    const first = await recipient.waitForPushes(2);
    expect(first.map((p) => [p.messageId, p.attempt])).toEqual([
      [unacked!.messageId, 1],
      [acked!.messageId, 1],
    ]);
    recipient.ack([str(acked!.messageId)]);
    // Frames are handled in order: the ping's answer means the ack was handled.
    await recipient.request({ type: "ping" });

    const again = await recipient.nextFrame(
      (f) => f.type === "push" && f.messageId === unacked!.messageId && f.attempt === 2,
      (LEASE_SECONDS + 5) * 1000,
    );
    // Everything but the attempt is the same push.
    expect({ ...again, attempt: 1 } as Frame).toEqual(first[0]!);
    // Leases of both ran out together: had the acked one been requeued it would be here by now.
    await Bun.sleep(1_500);
    expect(pushesOf(recipient, acked!.messageId)).toHaveLength(1);

    // Acked after a redelivery, it stops coming.
    recipient.ack([str(unacked!.messageId)]);
    await Bun.sleep(300);
    const settled = pushesOf(recipient, unacked!.messageId).length;
    await Bun.sleep((LEASE_SECONDS + 1.5) * 1000);
    expect(pushesOf(recipient, unacked!.messageId)).toHaveLength(settled);
    expect(sender.pushes()).toHaveLength(0);
  });

  test("a recipient that never acks still gets a queue longer than the push window, as leases run out", async () => {
    const { mesh, members } = await setupMesh(admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, mesh.id, a);
    const recipient = await connect(broker, mesh.id, b);
    // More than the 512 pushes a member may have outstanding; nothing is acked.
    const acks = await sendMany(sender, Array.from({ length: 600 }, () => sendFrame(b.pubkey)));
    const wanted = new Set(acks.map((ack) => str(ack.messageId)));
    await waitUntil(
      () => [...wanted].every((id) => pushesOf(recipient, id).length > 0),
      (LEASE_SECONDS + 20) * 1000,
      "all 600 messages pushed at least once",
    );
  });
});

describe("order, sharing and reconnects (LEASE_SECONDS=30)", () => {
  let backend: TestBackend;
  let broker: BrokerProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    backend = await freshBackend();
    broker = await spawnBroker({ ...backend.env, ADMIN_TOKEN });
    admin = new AdminClient(broker.url, ADMIN_TOKEN);
  });
  afterAll(async () => {
    await broker?.stop();
    await backend?.dispose();
  });

  test("a recipient that closes without acking gets the unacked messages again on reconnect, attempt growing", async () => {
    const { mesh, members } = await setupMesh(admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, mesh.id, a);
    const acks = await sendMany(sender, [sendFrame(b.pubkey), sendFrame(b.pubkey), sendFrame(b.pubkey)]);
    const ids = acks.map((x) => str(x.messageId));

    const first = await connect(broker, mesh.id, b, { sessionId: "session-1" });
    expect((await first.waitForPushes(3)).map((p) => [p.messageId, p.attempt])).toEqual(ids.map((id) => [id, 1]));
    first.ack([ids[0]!]);
    // The ack is written before the close: a ping behind it on the same connection proves it was handled.
    await first.request({ type: "ping" });
    await first.close();

    // The lease here is 30 s: the close itself, not the lease, gives the messages back.
    const second = await connect(broker, mesh.id, b, { sessionId: "session-2" });
    const redelivered = await second.waitForPushes(2, 15_000);
    expect(redelivered.map((p) => p.messageId)).toEqual(ids.slice(1));
    const attempts2 = redelivered.map((p) => Number(p.attempt));
    for (const n of attempts2) expect(n).toBeGreaterThanOrEqual(2);
    await second.close();

    // Back on the first session id; still nothing acked.
    const third = await connect(broker, mesh.id, b, { sessionId: "session-1" });
    const again = await third.waitForPushes(2, 15_000);
    expect(again.map((p) => p.messageId)).toEqual(ids.slice(1));
    again.forEach((p, i) => expect(Number(p.attempt)).toBeGreaterThan(attempts2[i]!));
    third.ack(ids.slice(1));
    await third.request({ type: "ping" });
    await third.close();

    const fourth = await connect(broker, mesh.id, b);
    await Bun.sleep(1_500);
    expect(fourth.pushes()).toHaveLength(0);
  });

  test("FIFO: 200 messages from one sender to one recipient arrive in send order, across its connect", async () => {
    const { mesh, members } = await setupMesh(admin, { members: ["sender", "recipient", "other-sender"] });
    const [a, b, c] = members as [SetupMember, SetupMember, SetupMember];
    const sender = await connect(broker, mesh.id, a);
    const other = await connect(broker, mesh.id, c);
    // Half queued while the recipient is away, half while its queue is being drained; another
    // sender interleaves its own messages, which must not disturb a's order.
    const queuedAcks = await sendMany(
      sender,
      Array.from({ length: 100 }, (_, i) => sendFrame(b.pubkey, { ciphertext: `a-${i}` })),
    );
    const recipient = await connect(broker, mesh.id, b, { autoAck: true });
    const [liveAcks, otherAcks] = await Promise.all([
      sendMany(sender, Array.from({ length: 100 }, (_, i) => sendFrame(b.pubkey, { ciphertext: `a-${100 + i}` }))),
      sendMany(other, Array.from({ length: 50 }, (_, i) => sendFrame(b.pubkey, { ciphertext: `c-${i}` }))),
    ]);
    const sent = [...queuedAcks, ...liveAcks].map((x) => str(x.messageId));
    const fromOther = otherAcks.map((x) => str(x.messageId));
    expect(new Set(sent).size).toBe(200);

    await waitUntil(() => new Set(firstArrivals(recipient.pushes())).size >= 250, 60_000, "250 distinct pushes");
    const arrived = firstArrivals(recipient.pushes());
    const fromA = new Set(sent);
    expect(arrived.filter((id) => fromA.has(id))).toEqual(sent);
    const fromC = new Set(fromOther);
    expect(arrived.filter((id) => fromC.has(id))).toEqual(fromOther);
    const text = new Map(recipient.pushes().map((p) => [p.messageId, p.ciphertext]));
    expect(sent.map((id) => text.get(id))).toEqual(Array.from({ length: 200 }, (_, i) => `a-${i}`));
  });

  test("two presences of one member: each of 300 messages is pushed to exactly one of them, and all arrive", async () => {
    const { mesh, members } = await setupMesh(admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const sender = await connect(broker, mesh.id, a);
    const p1 = await connect(broker, mesh.id, b, { sessionId: "desk", autoAck: true });
    const p2 = await connect(broker, mesh.id, b, { sessionId: "laptop", autoAck: true });

    const sent: string[] = [];
    for (let batch = 0; batch < 3; batch++) {
      const acks = await sendMany(sender, Array.from({ length: 100 }, () => sendFrame(b.pubkey)));
      sent.push(...acks.map((x) => str(x.messageId)));
    }
    expect(new Set(sent).size).toBe(300);

    const union = () => new Set([...p1.pushes(), ...p2.pushes()].map((p) => str(p.messageId)));
    await waitUntil(() => union().size >= 300, 60_000, "300 distinct pushes over both presences");
    await Bun.sleep(500);
    const counts = new Map<string, number>();
    for (const p of [...p1.pushes(), ...p2.pushes()]) counts.set(str(p.messageId), (counts.get(str(p.messageId)) ?? 0) + 1);
    const pushedTwice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    expect(pushedTwice).toEqual([]);
    expect([...counts.keys()].sort()).toEqual([...sent].sort());
    expect([...p1.pushes(), ...p2.pushes()].every((p) => p.attempt === 1)).toBe(true);
  });
});

interface Sent {
  messageId: string;
  sender: number;
  recipient: number;
  ciphertext: string;
}

/**
 * `senders` peers send `total` messages between them, each to one of the recipients in
 * turn, all pipelined and concurrent; resolves once every send is acked.
 */
async function sendLoad(senderPeers: TestPeer[], recipients: SetupMember[], total: number): Promise<Sent[]> {
  const perSender = total / senderPeers.length;
  const results = await Promise.all(
    senderPeers.map(async (peer, s) => {
      const plan = Array.from({ length: perSender }, (_, i) => ({
        recipient: (i + s) % recipients.length,
        ciphertext: `s${s}-m${i}-${crypto.randomUUID()}`,
      }));
      const replies = await sendMany(
        peer,
        plan.map((p, i) => sendFrame(recipients[p.recipient]!.pubkey, { ciphertext: p.ciphertext, id: `s${s}-${i}` })),
        180_000,
      );
      return replies.map((r, i): Sent => {
        expect(r).toMatchObject({ type: "ack", queued: true, recipients: 1 });
        return { messageId: str(r.messageId), sender: s, recipient: plan[i]!.recipient, ciphertext: plan[i]!.ciphertext };
      });
    }),
  );
  return results.flat();
}

/** Every acked message reached its recipient intact, once as a distinct messageId, in per-sender order. */
function expectAllDelivered(sent: Sent[], receivers: TestPeer[], senderPubkeys: string[]): void {
  const byId = new Map(sent.map((s) => [s.messageId, s]));
  const distinct = new Set<string>();
  receivers.forEach((peer, r) => {
    for (const p of peer.pushes()) {
      const s = byId.get(str(p.messageId));
      // No foreign or altered message, and each goes to its own recipient only.
      expect(s && { recipient: s.recipient, ciphertext: s.ciphertext, senderPubkey: senderPubkeys[s.sender] }).toEqual({
        recipient: r,
        ciphertext: str(p.ciphertext),
        senderPubkey: str(p.senderPubkey),
      });
      distinct.add(str(p.messageId));
    }
    const arrived = firstArrivals(peer.pushes());
    senderPubkeys.forEach((_, s) => {
      const expected = sent.filter((m) => m.sender === s && m.recipient === r).map((m) => m.messageId);
      const got = arrived.filter((id) => byId.get(id)?.sender === s);
      expect({ recipient: r, sender: s, order: got }).toEqual({ recipient: r, sender: s, order: expected });
    });
  });
  expect(distinct.size).toBe(sent.length);
}

describe("crash safety", () => {
  let backend: TestBackend | undefined;
  const brokers: BrokerProcess[] = [];

  afterEach(async () => {
    await pool.closeAll();
    for (const b of brokers.splice(0)) await b.stop();
    await backend?.dispose();
    backend = undefined;
  });

  const start = async (env: Record<string, string>) => {
    const b = await spawnBroker({ ...env, ADMIN_TOKEN, LEASE_SECONDS: String(LEASE_SECONDS) });
    brokers.push(b);
    return b;
  };

  for (const signal of ["SIGKILL", "SIGTERM"] as const) {
    const total = signal === "SIGKILL" ? 1000 : 300;
    test(`${signal}: every one of ${total} acked messages is delivered after a restart, in per-sender order`, async () => {
      backend = await freshBackend();
      const first = await start(backend.env);
      const admin = new AdminClient(first.url, ADMIN_TOKEN);
      const { mesh, members } = await setupMesh(admin, {
        members: ["s0", "s1", "s2", "s3", "away-1", "away-2", "silent"],
      });
      const senders = members.slice(0, 4);
      const recipients = members.slice(4);
      const senderPeers = await Promise.all(senders.map((s) => connect(first, mesh.id, s)));
      // Connected and never acking: its messages sit leased to a presence when the broker dies.
      const silent = await connect(first, mesh.id, recipients[2]!);

      const sent = await sendLoad(senderPeers, recipients, total);
      expect(new Set(sent.map((s) => s.messageId)).size).toBe(total);
      // Some are leased to it when the broker goes (pushes trail their acks by a moment).
      await waitUntil(() => silent.pushes().length > 0, 30_000, "a push to the silent recipient");

      first.kill(signal);
      const code = await first.exited;
      if (signal === "SIGTERM") expect(code).toBe(0);
      await Promise.all(pool.peers.splice(0).map((p) => p.closed));

      const second = await start(backend.env);
      const receivers = await Promise.all(recipients.map((r) => connect(second, mesh.id, r, { autoAck: true })));
      const distinct = () => new Set(receivers.flatMap((p) => p.pushes().map((x) => x.messageId))).size;
      await waitUntil(() => distinct() >= total, 120_000, `${total} distinct messages after the restart`).catch((error) => {
        throw new Error(`${String(error)}; got ${distinct()}`);
      });
      await Bun.sleep(500);
      expectAllDelivered(
        sent,
        receivers,
        senders.map((s) => s.pubkey),
      );
    }, 360_000);
  }
});
