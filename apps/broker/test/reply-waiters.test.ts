// Requests waiting for replies (services/reply-waiters.ts) against a real
// database: many requests of one member waiting at once cost one statement
// per news, not one per request — a backend with N requests waiting on one
// token would otherwise run N statements for every reply, N² in all.
import { describe, expect, test } from "bun:test";
import type { Database } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { createLogger } from "../src/log.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { QueuedWork } from "../src/services/queued-work.ts";
import { ReplyWaiters } from "../src/services/reply-waiters.ts";
import { useScratchDatabase } from "./support/scratch-db.ts";

const scratch = useScratchDatabase("reply-waiters");

describe("ReplyWaiters", () => {
  test("20 requests of one member, their 20 replies one after another: each request gets its own, in one statement per news", async () => {
    const db = scratch.db;
    // The statements the waiters run outside a transaction: looking for replies.
    let looks = 0;
    const counted: Database = { ...db, rows: (query) => (looks++, db.rows(query)) };
    const log = createLogger("silent", {});
    const queuedWork = new QueuedWork();
    const waiters = new ReplyWaiters(counted, queuedWork, new InstanceBus(db, log), log, { maxWaiters: 100, clock: Date.now });
    queuedWork.subscribe(waiters);
    const [ids] = await db.rows<{ mesh: string; asker: string; answerer: string }>(sql`
      WITH mesh AS (INSERT INTO meshes (slug, name) VALUES ('waits', 'waits') RETURNING id),
      asker AS (INSERT INTO members (mesh_id, pubkey, display_name) SELECT id, 'asker', 'asker' FROM mesh RETURNING id),
      answerer AS (INSERT INTO members (mesh_id, pubkey, display_name) SELECT id, 'answerer', 'answerer' FROM mesh RETURNING id)
      SELECT mesh.id AS mesh, asker.id AS asker, answerer.id AS answerer FROM mesh, asker, answerer`);
    const { mesh, asker, answerer } = ids!;
    const requests = await db.rows<{ id: string }>(sql`
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${mesh}::uuid, ${asker}::uuid, 'answerer', 'now', 'n', 'request ' || g, now() + interval '1 hour'
      FROM generate_series(1, 20) g RETURNING id`);

    const answers = requests.map((r) =>
      waiters.wait({ requestId: r.id, memberId: asker, meshId: mesh, deadline: Date.now() + 30_000, heldUntil: null, signal: new AbortController().signal }),
    );
    for (const [i, request] of requests.entries()) {
      await db.rows(sql`
        WITH reply AS (
          INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, reply_to, expires_at)
          VALUES (${mesh}::uuid, ${answerer}::uuid, 'asker', 'now', 'n', ${`reply ${i}`}, ${request.id}::uuid, now() + interval '1 hour')
          RETURNING id)
        INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
        SELECT id, ${asker}::uuid, 'now', now() + interval '1 hour' FROM reply`);
      queuedWork.forMembers([asker]);
    }
    const replies = await Promise.all(answers);
    expect(replies.map((r) => r?.replyTo)).toEqual(requests.map((r) => r.id));
    expect(replies.map((r) => r?.ciphertext)).toEqual(requests.map((_, i) => `reply ${i}`));
    // At most a look for the waiters' arrival and two per reply (one under way, one again after it).
    expect(looks).toBeLessThanOrEqual(2 + 2 * requests.length);
  });
});
