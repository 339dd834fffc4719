// What a webhook member is owed, counted from the queue alone: the gauge over
// every webhook (webhookQueueDepth, every instance, on a timer) and the admin
// view of one (webhookView). Against a real database; with the acknowledged
// deliveries kept for the retention in the table, the plans reach the owed
// ones through the partial indexes instead of reading them all.
import { beforeAll, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { upsertWebhook, webhookQueueDepth, webhookView } from "../src/store/webhooks.ts";
import { ackByHand } from "./support/acked.ts";
import { planOf } from "./support/plans.ts";
import { meshWithMember, useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
let hooked = "";
let other = "";

beforeAll(async () => {
  const { meshId, memberId } = await meshWithMember(scratch.db, "depth");
  hooked = memberId;
  const [row] = await scratch.db.rows<{ id: string }>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${meshId}::uuid, 'k2', 'other') RETURNING id`);
  other = row!.id;
  await upsertWebhook(scratch.db, hooked, "http://127.0.0.1:9/hook", "a-secret-of-enough-length");
});

/**
 * `count` messages from `other` to `recipient`, each with one delivery in
 * `state` (acked: moved as an ack moves it), expiring in `expiresIn`.
 */
async function owe(recipient: string, state: string, count: number, expiresIn = "1 day"): Promise<void> {
  const acking = crypto.randomUUID();
  const leased = state === "leased" || state === "acked";
  await scratch.db.rows(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT mesh_id, ${other}::uuid, 'k', 'now', 'n', 'c', now() + interval '1 day'
      FROM members, generate_series(1, ${count}) g WHERE id = ${other}::uuid
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, lease_presence_id, lease_expires_at)
    SELECT id, ${recipient}::uuid, 'now', now() + ${expiresIn}::interval, ${leased ? "leased" : state},
           CASE WHEN ${leased} THEN ${acking}::uuid END,
           CASE WHEN ${leased} THEN now() + interval '1 minute' END
    FROM m`);
  if (state === "acked") await scratch.db.rows(ackByHand(sql`d.lease_presence_id = ${acking}::uuid`));
}

test("a webhook member's queued and in-flight deliveries are counted, its acknowledged and expired ones and others' are not", async () => {
  await owe(hooked, "acked", 100);
  await owe(hooked, "expired", 10);
  await owe(hooked, "queued", 2);
  await owe(hooked, "leased", 1);
  await owe(other, "queued", 5);
  expect(await webhookQueueDepth(scratch.db)).toBe(3);
  expect((await webhookView(scratch.db, hooked))?.queued).toBe(3);
});

test("deliveries past their expiry that the expiry sweep has not marked yet are not counted", async () => {
  const owed = await webhookQueueDepth(scratch.db);
  await owe(hooked, "queued", 4, "-1 second");
  await owe(hooked, "leased", 2, "-1 second");
  expect(await webhookQueueDepth(scratch.db)).toBe(owed);
  expect((await webhookView(scratch.db, hooked))?.queued).toBe(owed);
});

test("the counts read the queue through its partial indexes, not the expired deliveries kept for the retention (generic plan)", async () => {
  await owe(hooked, "expired", 30_000);
  await scratch.db.rows(sql`ANALYZE deliveries`);
  const on = scratch.backend.databaseUrl ?? scratch.db;
  expect(await planOf(on, (recorder) => webhookQueueDepth(recorder))).not.toMatch(/Seq Scan on deliveries/);
  expect(await planOf(on, (recorder) => webhookView(recorder, hooked), { generic: true })).not.toMatch(/Seq Scan on deliveries/);
});
