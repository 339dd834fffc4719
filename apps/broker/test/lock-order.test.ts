// The statements that wait for a member's delivery rows — an ack, a requeue of
// any scope, a revocation's drop — lock them in one order (message id, then
// recipient), so none can deadlock with another. On a real Postgres: a third
// session holds one row of four; an ack of all four takes the rows before it
// in its order and waits; the other statement starts and must wait for the
// ack's first row, holding nothing. Locking in another order (the holder's
// index, or the rows' ids), it took rows the ack still needed, and one of the
// two was aborted as a deadlock a second later (deadlock_timeout).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { backendKind, waitUntil } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { ackDeliveries, ackHeldBy } from "../src/store/queue/ack.ts";
import { dropUndelivered } from "../src/store/queue/drop.ts";
import { requeue } from "../src/store/queue/requeue.ts";
import { EVERY_DELIVERY } from "./support/acked.ts";
import { useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
/** A session of its own, for the rows and the lock the statements meet. */
let other: postgres.Sql;

// Message ids in the reverse order of the deliveries' ids (the order they are
// written in), so an order by id or by place in the table is not the ack's.
const MESSAGE_IDS = ["f0000000", "c0000000", "80000000", "40000000"].map((head, i) => `${head}-0000-4000-8000-00000000000${i}`);
/** The row the third session holds: second in the ack's order. */
const HELD = MESSAGE_IDS[2]!;

type Rival = (setup: { member: string; holder: string }) => Promise<unknown>;

const rivals: Record<string, Rival> = {
  "requeue of the holder's leases": ({ holder }) => requeue(scratch.db, { presences: [holder] }),
  "requeue of lapsed leases of the holder": ({ holder }) => requeue(scratch.db, { expiredOf: [holder] }),
  "requeue of pushes": ({ member, holder }) =>
    requeue(scratch.db, { pushes: MESSAGE_IDS.map((messageId) => ({ messageId, memberId: member, presenceId: holder })) }),
  "drop of a revoked member's deliveries": ({ member }) => dropUndelivered(scratch.db, member),
  "webhook attempt's ack of the leases it held": ({ holder }) => ackHeldBy(scratch.db, holder),
};

const waiting = async (): Promise<number> => {
  const [row] = await scratch.db.rows<{ n: number }>(sql`
    SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
  return row!.n;
};

describe.skipIf(backendKind !== "postgres")("one lock order for a member's deliveries", () => {
  beforeAll(() => {
    other = postgres(scratch.backend.databaseUrl!, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await other?.end();
  });

  test.each(Object.keys(rivals))("an ack and a %s do not deadlock", async (name) => {
    await other`TRUNCATE meshes, messages, deliveries, acked_deliveries CASCADE`;
    const [row] = await other<Array<{ member: string; holder: string }>>`
      WITH mesh AS (INSERT INTO meshes (slug, name) VALUES ('lock-order', 'lock-order') RETURNING id)
      INSERT INTO members (mesh_id, pubkey, display_name) SELECT id, 'k', 'n' FROM mesh
      RETURNING id AS member, gen_random_uuid() AS holder`;
    const { member, holder } = row!;
    for (const id of MESSAGE_IDS) {
      await other`
        WITH m AS (
          INSERT INTO messages (id, mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
          SELECT ${id}, mesh_id, id, 'k', 'now', 'n', 'c', now() + interval '1 hour' FROM members WHERE id = ${member}
          RETURNING id)
        INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, lease_presence_id, lease_expires_at, attempt)
        SELECT id, ${member}, 'now', now() + interval '1 hour', 'leased', ${holder}, now() - interval '1 second', 1 FROM m`;
    }

    const reserved = await other.reserve();
    await reserved`BEGIN`;
    await reserved`SELECT 1 FROM deliveries WHERE message_id = ${HELD} FOR UPDATE`;
    const acked = ackDeliveries(
      scratch.db,
      MESSAGE_IDS.map((messageId) => ({ memberId: member, messageId })),
    );
    await waitUntil(async () => (await waiting()) === 1 || undefined, 10_000, "the ack to wait for the held row");
    const rival = rivals[name]!({ member, holder });
    await waitUntil(async () => (await waiting()) === 2 || undefined, 10_000, `the ${name} to wait`);
    await reserved`COMMIT`;
    reserved.release();

    // Both end without an error (a deadlock aborts one with 40P01), and every
    // delivery was acknowledged: the ack went first.
    const [ackedCount, rivalOutcome] = await Promise.allSettled([acked, rival]);
    expect(ackedCount).toEqual({ status: "fulfilled", value: 4 });
    expect(rivalOutcome.status).toBe("fulfilled");
    const states = await other<Array<{ state: string }>>`SELECT state FROM ${other.unsafe(EVERY_DELIVERY)} d WHERE recipient_member_id = ${member}`;
    expect(states.map((s) => s.state)).toEqual(["acked", "acked", "acked", "acked"]);
  });
});
