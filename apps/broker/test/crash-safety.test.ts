// DESIGN.md invariant 1: no acked message lost when the broker is killed
// (SIGKILL) or stopped (SIGTERM), and per-sender order across the restart.
import { afterEach, describe, expect, test } from "bun:test";
import {
  pushesBeforeMarker,
  setupMesh,
  TestBroker,
  waitUntil,
  type Frame,
  type SetupMember,
  type TestPeer,
} from "@switchboard/testkit";
import { firstArrivals, peersOfEachTest, sendFrame, sendMany, str } from "./support/messaging.ts";

// The silent recipient's leases must not run out before the kill: once a
// message has been pushed again, leases no longer run out in queue order, and
// per-sender order across the restart holds only for messages requeued in
// queue order. So it connects once the load is in, and the kill follows its
// pushes: what must fit in a lease is those pushes, not the whole load (on a
// busy machine that took longer than 2 s). After the restart its leases
// run out and go back to the queue, in the order they were written.
const CRASH_LEASE_SECONDS = 10;

const { pool, connect } = peersOfEachTest();

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
function expectAllDelivered(sent: Sent[], pushesByReceiver: Frame[][], senderPubkeys: string[]): void {
  const byId = new Map(sent.map((s) => [s.messageId, s]));
  const distinct = new Set<string>();
  pushesByReceiver.forEach((pushes, r) => {
    for (const p of pushes) {
      const s = byId.get(str(p.messageId));
      // No foreign or altered message, and each goes to its own recipient only.
      expect(s && { recipient: s.recipient, ciphertext: s.ciphertext, senderPubkey: senderPubkeys[s.sender] }).toEqual({
        recipient: r,
        ciphertext: str(p.ciphertext),
        senderPubkey: str(p.senderPubkey),
      });
      distinct.add(str(p.messageId));
    }
    const arrived = firstArrivals(pushes);
    senderPubkeys.forEach((_, s) => {
      const expected = sent.filter((m) => m.sender === s && m.recipient === r).map((m) => m.messageId);
      const got = arrived.filter((id) => byId.get(id)?.sender === s);
      expect({ recipient: r, sender: s, order: got }).toEqual({ recipient: r, sender: s, order: expected });
    });
  });
  expect(distinct.size).toBe(sent.length);
}

describe(`crash safety (LEASE_SECONDS=${CRASH_LEASE_SECONDS})`, () => {
  let broker: TestBroker | undefined;

  afterEach(async () => {
    await pool.closeAll();
    await broker?.dispose();
    broker = undefined;
  });

  for (const signal of ["SIGKILL", "SIGTERM"] as const) {
    const total = signal === "SIGKILL" ? 1000 : 300;
    test(`${signal}: every one of ${total} acked messages is delivered after a restart, in per-sender order`, async () => {
      broker = await TestBroker.start({ LEASE_SECONDS: String(CRASH_LEASE_SECONDS) });
      const { mesh, members } = await setupMesh(broker.admin, {
        members: ["s0", "s1", "s2", "s3", "away-1", "away-2", "silent"],
      });
      const senders = members.slice(0, 4);
      const recipients = members.slice(4);
      const senderPeers = await Promise.all(senders.map((s) => connect(broker!, mesh.id, s)));
      const sent = await sendLoad(senderPeers, recipients, total);
      expect(new Set(sent.map((s) => s.messageId)).size).toBe(total);

      // Connected and never acking: its messages sit leased to a presence when the broker dies.
      const silent = await connect(broker, mesh.id, recipients[2]!);
      const itsShare = sent.filter((m) => m.recipient === 2).length;
      await waitUntil(() => silent.pushes().length >= itsShare, 30_000, `${itsShare} pushes to the silent recipient`);
      // Each pushed once: no lease ran out before the kill.
      expect(silent.pushes().map((p) => p.attempt)).toEqual(Array.from({ length: itsShare }, () => 1));

      broker.process.kill(signal);
      const code = await broker.process.exited;
      if (signal === "SIGTERM") expect(code).toBe(0);
      await Promise.all(pool.peers.splice(0).map((p) => p.closed));

      await broker.start();
      const receivers = await Promise.all(recipients.map((r) => connect(broker!, mesh.id, r, { autoAck: true })));
      const distinct = () => new Set(receivers.flatMap((p) => p.pushes().map((x) => x.messageId))).size;
      await waitUntil(() => distinct() >= total, 120_000, `${total} distinct messages after the restart`).catch((error) => {
        throw new Error(`${String(error)}; got ${distinct()}`);
      });
      // Whatever else the restart was going to push them arrives before a marker.
      const marker = await connect(broker, mesh.id, senders[0]!);
      const pushes = await Promise.all(receivers.map((r) => pushesBeforeMarker(marker, r)));
      expectAllDelivered(
        sent,
        pushes,
        senders.map((s) => s.pubkey),
      );
    }, 360_000);
  }
});
