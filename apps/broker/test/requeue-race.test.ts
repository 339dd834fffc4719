// A requeue scoped to a holder (store/queue/requeue.ts) against a lease that
// moved on while it waited for the row: on a real Postgres, a second session
// ends the lease and gives the delivery to another presence while the
// requeue of the first presence waits for its row lock. The requeue must
// leave the new holder's lease alone (else its push goes out twice).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, migrate, type Database } from "@switchboard/db";
import { backendKind, freshBackend, waitUntil, type TestBackend } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { requeue } from "../src/store/queue/requeue.ts";

let backend: TestBackend;
let db: Database;
let other: postgres.Sql;

describe.skipIf(backendKind !== "postgres")("requeue of a lease that moved on", () => {
  beforeAll(async () => {
    backend = await freshBackend();
    db = await connect({ databaseUrl: backend.databaseUrl, dataDir: backend.dataDir ?? "" });
    await migrate(db);
    other = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await other?.end();
    await db?.close();
    await backend?.dispose();
  });

  const scopes = ["presences", "pushes"] as const;
  test.each(scopes)("scope %s: a delivery re-leased to another presence meanwhile stays leased to it", async (scope) => {
    const [row] = await other<Array<{ mesh: string; member: string; message: string; p: string; q: string }>>`
      WITH mesh AS (INSERT INTO meshes (slug, name) VALUES (${`race-${scope}`}, 'race') RETURNING id),
      member AS (INSERT INTO members (mesh_id, pubkey, display_name) SELECT id, 'k', 'n' FROM mesh RETURNING id, mesh_id),
      message AS (
        INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
        SELECT mesh_id, id, 'k', 'now', 'n', 'c', now() + interval '1 hour' FROM member RETURNING id)
      SELECT member.mesh_id AS mesh, member.id AS member, message.id AS message,
             gen_random_uuid() AS p, gen_random_uuid() AS q
      FROM member, message`;
    const { member, message, p, q } = row!;
    await other`
      INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, lease_presence_id, lease_expires_at, attempt)
      VALUES (${message}, ${member}, 'now', now() + interval '1 hour', 'leased', ${p}, now() + interval '30 seconds', 1)`;

    // The lease ends and goes to q, in a transaction that holds the row…
    const reserved = await other.reserve();
    await reserved`BEGIN`;
    await reserved`UPDATE deliveries SET lease_presence_id = ${q}, attempt = attempt + 1 WHERE message_id = ${message}`;
    // …while p's requeue reads it as p's and waits for the row.
    const requeued = requeue(db, scope === "presences" ? { presences: [p] } : { pushes: [{ messageId: message, memberId: member, presenceId: p }] });
    await waitUntil(async () => {
      const [waiting] = await db.rows<{ n: number }>(sql`
        SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
      return waiting!.n > 0 || undefined;
    }, 10_000, "the requeue to wait for the row");
    await reserved`COMMIT`;
    reserved.release();

    expect(await requeued).toEqual([]);
    const [after] = await db.rows<{ state: string; holder: string }>(sql`
      SELECT state, lease_presence_id AS holder FROM deliveries WHERE message_id = ${message}::uuid`);
    expect(after).toEqual({ state: "leased", holder: q });
  });
});
