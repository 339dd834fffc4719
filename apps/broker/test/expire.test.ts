// The expiry sweep (store/queue/expire.ts), against a real database: it
// expires what is queued past its time, the longest past first, a bounded
// number at a time, and nothing else; a delivery another sweep holds is
// skipped, not waited for. (How it reaches them is pool-plans.test.ts's.)
import { describe, expect, test } from "bun:test";
import { backendKind } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { expireDeliveries } from "../src/store/queue/expire.ts";
import { useMeshDatabase } from "./support/scratch-db.ts";

const t = useMeshDatabase("expire");

/** A message and its one delivery in `state`, both expiring `expiresIn` from now; its message id. */
async function delivery(state: "queued" | "leased" | "expired", expiresIn: string): Promise<string> {
  const [row] = await t.db.rows<{ id: string }>(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      VALUES (${t.meshId}::uuid, ${t.memberId}::uuid, 'k', 'next', 'n', 'c', now() + ${expiresIn}::interval)
      RETURNING id, expires_at)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, lease_presence_id, lease_expires_at, attempt)
    SELECT id, ${t.memberId}::uuid, 'next', expires_at, ${state},
           CASE WHEN ${state} = 'leased' THEN gen_random_uuid() END,
           CASE WHEN ${state} = 'leased' THEN now() + interval '1 minute' END,
           CASE WHEN ${state} = 'queued' THEN 0 ELSE 1 END
    FROM m RETURNING message_id AS id`);
  return row!.id;
}

const statesOf = async (messageIds: string[]) => {
  const rows = await t.db.rows<{ id: string; state: string }>(sql`
    SELECT message_id::text AS id, state FROM deliveries
    WHERE message_id = ANY (ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(messageIds)}::jsonb)::uuid))`);
  return messageIds.map((id) => rows.find((r) => r.id === id)?.state);
};

describe("the expiry sweep", () => {
  test("expires queued deliveries past their time, the longest past first, at most its limit a sweep, and nothing else", async () => {
    // Written the latest past first: in the order of their ids, a sweep would take the wrong two.
    const due = [await delivery("queued", "-1 minute"), await delivery("queued", "-2 minutes"), await delivery("queued", "-3 minutes")];
    const others = [
      await delivery("queued", "1 day"),
      // Past its time but leased: it expires once its lease ends and it is queued again.
      await delivery("leased", "-1 minute"),
      await delivery("expired", "-5 minutes"),
    ];
    expect(await expireDeliveries(t.db, 2)).toBe(2);
    expect(await statesOf(due)).toEqual(["queued", "expired", "expired"]);
    expect(await expireDeliveries(t.db, 10)).toBe(1);
    expect(await expireDeliveries(t.db, 10)).toBe(0);
    expect(await statesOf(due)).toEqual(["expired", "expired", "expired"]);
    expect(await statesOf(others)).toEqual(["queued", "leased", "expired"]);
  });

  // The embedded database has one connection: a transaction holding a row
  // holds every other statement too.
  test.skipIf(backendKind !== "postgres")("skips a delivery another sweep holds instead of waiting for it", async () => {
    const [held, free] = [await delivery("queued", "-2 minutes"), await delivery("queued", "-1 minute")];
    const expiredMeanwhile = await t.db.transaction(async (tx) => {
      await tx.rows(sql`SELECT id FROM deliveries WHERE message_id = ${held}::uuid FOR UPDATE`);
      return expireDeliveries(t.db, 10);
    });
    expect(expiredMeanwhile).toBe(1);
    expect(await statesOf([held, free])).toEqual(["queued", "expired"]);
    expect(await expireDeliveries(t.db, 10)).toBe(1);
    expect(await statesOf([held, free])).toEqual(["expired", "expired"]);
  });
});
