// A send on one instance whose statement read a recipient's presence on
// another instance as live, and committed only after that instance's
// graceful stop ended the presence and took its leases back, leases the
// delivery to the ended presence. The stopped instance no longer listens, so
// the others put such a lease back (the stop's bus notice, recent-ends.ts):
// the message comes within seconds of the recipient's reconnect, not after
// LEASE_SECONDS.
import { describe, expect, test } from "bun:test";
import { backendKind, setupMesh, TestPeer, waitUntil, type SetupMember } from "@switchboard/testkit";
import type postgres from "postgres";
import { holdReplyLate, httpBody, postMessage } from "./support/http-api.ts";
import { str } from "./support/messaging.ts";
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
      // Its stop committed (the notice went with it): the statement goes on now, within the 5 s the others look.
      await stopCommitted(pair.sql, "recipient-on-a");
      await holder`ROLLBACK`;
      expect(await pair.a.process.exited).toBe(0);
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

describe.skipIf(backendKind !== "postgres")("a reply held for a request whose wait a stopping instance ended (needs DATABASE_URL)", () => {
  const pair = usePairWithDatabase({ LEASE_SECONDS: String(LEASE_SECONDS), SHUTDOWN_DRAIN_MS: "0", SWEEP_INTERVAL_MS: "200" });
  const { peers } = pair;

  test("is put back by the other instances, told by the stop's notice, not held until the hold runs out", async () => {
    const { mesh, members } = await setupMesh(pair.b.admin, { members: ["app", "runner"] });
    const [app, runner] = members as [SetupMember, SetupMember];
    const token = await pair.b.admin.createApiToken(mesh.id, app.id);
    const appSocket = await TestPeer.connect(pair.b.wsUrl, { identity: app.identity, meshId: mesh.id });
    const runnerSocket = await TestPeer.connect(pair.a.wsUrl, { identity: runner.identity, meshId: mesh.id, sessionId: "runner-on-a" });
    peers.push(appSocket, runnerSocket);
    // The wait on a, answered; its release is a's to look after, and a stops.
    const waiting = postMessage<{ messageId: string; reply: { messageId: string } | null }>(pair.a.url, token, httpBody(runner.pubkey), { wait: 30 });
    const [command] = await runnerSocket.waitForPushes(1);
    const first = await runnerSocket.send(app.pubkey, { replyTo: str(command!.messageId) });
    const answered = await waiting;
    expect(answered.body.reply?.messageId).toBe(str(first.messageId));
    pair.a.process.kill("SIGTERM");
    await stopCommitted(pair.sql, "runner-on-a");

    // A second reply, held for the request by a send statement that read the hold before the wait released it.
    const late = await holdReplyLate(pair.b.backend, mesh.id, runner, app, answered.body.messageId);
    const [push] = await appSocket.waitForPushes(1, 20_000);
    expect({ messageId: push!.messageId, nonce: push!.nonce }).toEqual({ messageId: late, nonce: "late" });
    expect(await pair.a.process.exited).toBe(0);
  });
});

/** Until the instance holding the session `sessionId` has committed its stop. */
async function stopCommitted(sql: postgres.Sql, sessionId: string): Promise<void> {
  await waitUntil(
    async () => {
      const [row] = await sql<Array<{ stopped: boolean }>>`
        SELECT stopped_at IS NOT NULL AS stopped FROM broker_instances WHERE id = (SELECT instance_id FROM presences WHERE session_id = ${sessionId})`;
      return row?.stopped === true || undefined;
    },
    30_000,
    "the instance's stop to commit",
  );
}
