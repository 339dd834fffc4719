// A send on one instance whose statement read a recipient's presence on
// another instance as live, and committed only after that instance's
// graceful stop ended the presence and took its leases back, leases the
// delivery to the ended presence. The stopped instance no longer listens, so
// the others put such a lease back (the stop's bus notice, recent-ends.ts):
// the message comes within seconds of the recipient's reconnect, not after
// LEASE_SECONDS.
import { describe, expect, test } from "bun:test";
import { backendKind, setupMesh, TestPeer, waitUntil, type SetupMember } from "@switchboard/testkit";
import { usePairWithDatabase } from "./support/pair-database.ts";

// Far longer than any wait below: a lease left to run out would fail the test.
const LEASE_SECONDS = 600;

describe.skipIf(backendKind !== "postgres")("a delivery leased to a presence as its instance stops (needs DATABASE_URL)", () => {
  const pair = usePairWithDatabase({ LEASE_SECONDS: String(LEASE_SECONDS), SHUTDOWN_DRAIN_MS: "0" }, 2);
  const { peers } = pair;

  test("is put back by the instance that sent it and pushed to the recipient's next socket, not left to its lease", async () => {
    const { mesh, members } = await setupMesh(pair.b.admin, { members: ["sender", "recipient"] });
    const [senderM, recipientM] = members as [SetupMember, SetupMember];
    const onA = await TestPeer.connect(pair.a.wsUrl, { identity: recipientM.identity, meshId: mesh.id, sessionId: "recipient-on-a" });
    peers.push(onA);
    const sender = await TestPeer.connect(pair.b.wsUrl, { identity: senderM.identity, meshId: mesh.id });
    peers.push(sender);

    // An open transaction holds the sender's client id "late": the send
    // statement with that id reads the presence on a as live, then waits
    // for this transaction at its insert, past a's stop.
    const holder = await pair.sql.reserve();
    try {
      await holder`BEGIN`;
      await holder`
        INSERT INTO messages (mesh_id, sender_member_id, client_id, target_spec, priority, nonce, ciphertext, expires_at)
        VALUES (${mesh.id}, ${senderM.id}, 'late', ${recipientM.pubkey}, 'next', 'n', 'c', now() + interval '1 hour')`;
      const acked = sender.send(recipientM.pubkey, { id: "late" });
      await waitUntil(
        async () => {
          const [row] = await pair.sql<Array<{ n: number }>>`
            SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
          return row!.n > 0 || undefined;
        },
        30_000,
        "the send statement waiting at its insert",
      );

      pair.a.process.kill("SIGTERM");
      expect(await pair.a.process.exited).toBe(0);
      const [instance] = await pair.sql<Array<{ stopped: boolean }>>`
        SELECT stopped_at IS NOT NULL AS stopped FROM broker_instances WHERE id = (SELECT instance_id FROM presences WHERE session_id = 'recipient-on-a')`;
      expect(instance).toEqual({ stopped: true });

      await holder`ROLLBACK`;
      const ack = await acked;
      expect(ack).toMatchObject({ type: "ack", queued: true, recipients: 1 });

      const onB = await TestPeer.connect(pair.b.wsUrl, { identity: recipientM.identity, meshId: mesh.id, sessionId: "recipient-on-b" });
      peers.push(onB);
      const [push] = await onB.waitForPushes(1, 20_000);
      // Its second attempt: the statement leased it to the presence the stop had ended (the first), and it was put back.
      expect(push).toMatchObject({ messageId: ack.messageId, attempt: 2 });
    } finally {
      holder.release();
    }
  });
});
