// A send whose statement began before a hello replaced its recipient's
// session (or before a reap ended it) can commit a lease to the ended
// presence after the end put that presence's leases back. When the
// presence's instance is gone, nobody pushes that lease: it waited out
// LEASE_SECONDS while the member's later messages went ahead. The instance
// that ended the presence puts such leases back at its next sweeps
// (services/recent-ends.ts). So does the instance whose wait released a
// request's hold on its replies, for a reply held as the hold ended. The
// late lease is written here by hand, as the send statement would have
// written it, once the end has committed.
import { afterAll, describe, expect, test } from "bun:test";
import { backendKind, PeerPool, setupMesh, useTestBroker, useTestBrokerPair, waitUntil, type SetupMember, type TestBackend } from "@switchboard/testkit";
import { holdReplyLate, httpBody, postMessage } from "./support/http-api.ts";
import { queryPostgres, str } from "./support/messaging.ts";

const pool = new PeerPool();
afterAll(() => pool.closeAll());

describe.skipIf(backendKind !== "postgres")("a lease committed to a presence its hello had ended (needs DATABASE_URL: written beside the broker)", () => {
  // Far longer than the test waits: only the sweep can put the lease back in time.
  const broker = useTestBroker({ LEASE_SECONDS: "600", SWEEP_INTERVAL_MS: "200" });

  test("is put back and pushed to the session's new presence, not held until the lease runs out", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["sender", "recipient"] });
    const [sender, recipient] = members as [SetupMember, SetupMember];
    const first = await pool.connect(broker.wsUrl, recipient, mesh.id);
    const ended = str(first.helloAck?.presenceId);
    const again = await pool.connect(broker.wsUrl, recipient, mesh.id, { sessionId: first.sessionId });
    await first.closed;

    const late = await leaseLate(broker.backend, mesh.id, sender, recipient, ended);
    const [push] = await again.waitForPushes(1, 20_000);
    expect({ messageId: push!.messageId, nonce: push!.nonce }).toEqual({ messageId: late, nonce: "late" });
  });
});

describe.skipIf(backendKind !== "postgres")("a lease committed to a presence a reap had ended (needs DATABASE_URL)", () => {
  const pair = useTestBrokerPair({ LEASE_SECONDS: "600", SWEEP_INTERVAL_MS: "200", INSTANCE_LEASE_SECONDS: "2" });

  test("is put back by the reaping instance and pushed to the member's presence there", async () => {
    const { a, b } = pair;
    const { mesh, members } = await setupMesh(a.admin, { members: ["sender", "recipient"] });
    const [sender, recipient] = members as [SetupMember, SetupMember];
    const onB = await pool.connect(b.wsUrl, recipient, mesh.id);
    const ended = str(onB.helloAck?.presenceId);
    b.process.kill("SIGKILL");
    await b.process.exited;
    // A new session on A: the reap, not a hello, ends the presence on B.
    const onA = await pool.connect(a.wsUrl, recipient, mesh.id);
    const reaped = async () => {
      const rows = await queryPostgres(a.backend, (sql) => sql<{ n: number }[]>`SELECT count(*)::int AS n FROM presences WHERE id = ${ended}::uuid AND disconnected_at IS NOT NULL`);
      return rows![0]!.n === 1;
    };
    await waitUntil(reaped, 20_000, "the reap of the killed instance's presence");
    const late = await leaseLate(a.backend, mesh.id, sender, recipient, ended);
    const [push] = await onA.waitForPushes(1, 20_000);
    expect({ messageId: push!.messageId, nonce: push!.nonce }).toEqual({ messageId: late, nonce: "late" });
  });
});

describe.skipIf(backendKind !== "postgres")("a reply held for a request after its wait released the hold (needs DATABASE_URL)", () => {
  const broker = useTestBroker({ LEASE_SECONDS: "600", SWEEP_INTERVAL_MS: "200" });

  test("is put back by the instance that released it and pushed to the member's socket, not held until the hold runs out", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runner] = members as [SetupMember, SetupMember];
    const token = await broker.admin.createApiToken(mesh.id, app.id);
    const appSocket = await pool.connect(broker.wsUrl, app, mesh.id);
    const runnerSocket = await pool.connect(broker.wsUrl, runner, mesh.id);
    const waiting = postMessage<{ messageId: string; reply: { messageId: string } | null }>(broker.url, token, httpBody(runner.pubkey), { wait: 30 });
    const [command] = await runnerSocket.waitForPushes(1);
    const first = await runnerSocket.send(app.pubkey, { replyTo: str(command!.messageId) });
    const answered = await waiting;
    expect(answered.body.reply?.messageId).toBe(str(first.messageId));

    // A second reply, held for the request by a send statement that read the hold before the wait released it.
    const late = await holdReplyLate(broker.backend, mesh.id, runner, app, answered.body.messageId);
    const [push] = await appSocket.waitForPushes(1, 20_000);
    expect({ messageId: push!.messageId, nonce: push!.nonce }).toEqual({ messageId: late, nonce: "late" });
  });
});

/** Writes a message leased to the ended presence for 600 s, as a send statement that began before the end would have; its id. */
async function leaseLate(backend: TestBackend, meshId: string, sender: SetupMember, recipient: SetupMember, presenceId: string): Promise<string> {
  const rows = await queryPostgres(backend, (sql) => sql<{ id: string }[]>`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      VALUES (${meshId}::uuid, ${sender.id}::uuid, ${recipient.pubkey}, 'now', 'late', 'bGF0ZQ==', now() + interval '1 hour')
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, lease_presence_id, lease_expires_at, attempt)
    SELECT id, ${recipient.id}::uuid, 'now', now() + interval '1 hour', 'leased', ${presenceId}::uuid, now() + interval '600 seconds', 1 FROM m
    RETURNING message_id::text AS id`);
  return rows![0]!.id;
}
