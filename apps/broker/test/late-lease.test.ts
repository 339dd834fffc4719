// A send whose statement began before a hello replaced its recipient's
// session (or before a reap ended it) can commit a lease to the ended
// presence after the end put that presence's leases back. When the
// presence's instance is gone, nobody pushes that lease: it waited out
// LEASE_SECONDS while the member's later messages went ahead. The instance
// that ended the presence puts such leases back at its next sweeps
// (services/ended-presences.ts). The late lease is written here by hand, as
// the send statement would have written it, once the hello has committed.
import { afterAll, describe, expect, test } from "bun:test";
import { backendKind, PeerPool, setupMesh, useTestBroker, type SetupMember } from "@switchboard/testkit";
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

    const [late] = (await queryPostgres(broker.backend, (sql) => sql<{ id: string }[]>`
      WITH m AS (
        INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
        VALUES (${mesh.id}::uuid, ${sender.id}::uuid, ${recipient.pubkey}, 'now', 'late', 'bGF0ZQ==', now() + interval '1 hour')
        RETURNING id)
      INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, lease_presence_id, lease_expires_at, attempt)
      SELECT id, ${recipient.id}::uuid, 'now', now() + interval '1 hour', 'leased', ${ended}::uuid, now() + interval '600 seconds', 1 FROM m
      RETURNING message_id::text AS id`))!;
    const [push] = await again.waitForPushes(1, 20_000);
    expect({ messageId: push!.messageId, nonce: push!.nonce }).toEqual({ messageId: late!.id, nonce: "late" });
  });
});
