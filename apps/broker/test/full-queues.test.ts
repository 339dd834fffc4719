// The sweep that marks full queues (store/queue/full-queues.ts), against a
// real database: it counts what a member has queued, not what is leased,
// expired or acknowledged; it marks a member at the bound and clears the
// mark below it; it skips a member another transaction holds rather than waiting; it
// counts the queue's depth, every recipient's queued and leased deliveries
// and nothing acknowledged or expired; and it reads the queue through its
// indexes, not the expired deliveries kept for the retention. And both send statements (the send
// statement and the direct one) write a marked member nothing, planned as
// before the mark was read.
import { beforeEach, describe, expect, test } from "bun:test";
import { backendKind } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { enqueueSends, writtenDirectly, type LocalHolders } from "../src/store/queue/enqueue.ts";
import { markFullQueues } from "../src/store/queue/full-queues.ts";
import { ackByHand } from "./support/acked.ts";
import { meshWithMember, newMessage, settledDeliveries, useMeshDatabase } from "./support/scratch-db.ts";
import { cteRescans, planOf } from "./support/plans.ts";

const t = useMeshDatabase("full-queues");

/** `count` deliveries to `memberId` in `state` (acked: acknowledged in place, as before acks moved to acked_deliveries). */
async function deliveries(memberId: string, state: "queued" | "leased" | "acked", count: number): Promise<void> {
  await t.db.rows(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${t.meshId}::uuid, ${t.memberId}::uuid, 'k', 'next', 'n', 'c', now() + interval '1 hour'
      FROM generate_series(1, ${count})
      RETURNING id, expires_at)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, lease_presence_id, lease_expires_at, attempt, acked_at)
    SELECT id, ${memberId}::uuid, 'next', expires_at, ${state},
           CASE WHEN ${state} = 'leased' THEN gen_random_uuid() END,
           CASE WHEN ${state} = 'leased' THEN now() + interval '1 minute' END,
           CASE WHEN ${state} = 'queued' THEN 0 ELSE 1 END,
           CASE WHEN ${state} = 'acked' THEN now() END
    FROM m`);
}

const markOf = async (memberId: string) =>
  (await t.db.rows<{ full: boolean }>(sql`SELECT queue_full_at IS NOT NULL AS full FROM members WHERE id = ${memberId}::uuid`))[0]?.full;

const takeOne = (memberId: string) =>
  t.db.rows(sql`
    UPDATE deliveries SET state = 'leased', lease_presence_id = gen_random_uuid(), lease_expires_at = now() + interval '1 minute'
    WHERE id = (SELECT min(id) FROM deliveries WHERE state = 'queued' AND recipient_member_id = ${memberId}::uuid)`);

describe("markFullQueues", () => {
  // Each test's members alone have queues: the sweep counts every member's.
  beforeEach(async () => {
    await t.db.rows(sql`DELETE FROM deliveries`);
    await t.db.rows(sql`UPDATE members SET queue_full_at = NULL WHERE queue_full_at IS NOT NULL`);
  });

  test("marks a member whose queued deliveries reach the bound, counting nothing else, and clears it below", async () => {
    const { memberId: member } = await meshWithMember(t.db, "fq-member");
    // Leased, expired and settled deliveries are not its queue.
    await deliveries(member, "leased", 5);
    await settledDeliveries(t.db, { meshId: t.meshId, memberId: member }, 5);
    await deliveries(member, "queued", 2);
    // The depth: its 5 leased and 2 queued.
    expect(await markFullQueues(t.db, 3)).toEqual({ filled: [], drained: [], full: 0, depth: 7 });
    expect(await markOf(member)).toBe(false);

    await deliveries(member, "queued", 1);
    expect(await markFullQueues(t.db, 3)).toEqual({ filled: [member], drained: [], full: 1, depth: 8 });
    expect(await markOf(member)).toBe(true);
    // Marked already: nothing changes, it is still counted.
    expect(await markFullQueues(t.db, 3)).toEqual({ filled: [], drained: [], full: 1, depth: 8 });

    // Taken, the delivery leaves its queue and stays in the depth.
    await takeOne(member);
    expect(await markFullQueues(t.db, 3)).toEqual({ filled: [], drained: [member], full: 0, depth: 8 });
    expect(await markOf(member)).toBe(false);
  });

  // The embedded database has one connection: a transaction holding a row holds every other statement too.
  test.skipIf(backendKind !== "postgres")("skips a member another transaction holds instead of waiting for it", async () => {
    const { memberId: held } = await meshWithMember(t.db, "fq-held");
    const { memberId: free } = await meshWithMember(t.db, "fq-free");
    await deliveries(held, "queued", 2);
    await deliveries(free, "queued", 2);
    const swept = await t.db.transaction(async (tx) => {
      await tx.rows(sql`SELECT id FROM members WHERE id = ${held}::uuid FOR UPDATE`);
      return markFullQueues(t.db, 2);
    });
    expect(swept.filled).toEqual([free]);
    expect(await markOf(held)).toBe(false);
    expect((await markFullQueues(t.db, 2)).filled).toEqual([held]);
  });

  test("counts the depth: every recipient's queued and leased deliveries, nothing acknowledged or expired", async () => {
    const { memberId: one } = await meshWithMember(t.db, "fq-depth-one");
    const { memberId: other } = await meshWithMember(t.db, "fq-depth-other");
    // Acknowledged both ways (moved to acked_deliveries, and in place), and expired.
    await deliveries(one, "leased", 7);
    await t.db.rows(ackByHand(sql`d.recipient_member_id = ${one}::uuid`));
    await deliveries(other, "acked", 6);
    await settledDeliveries(t.db, { meshId: t.meshId, memberId: other }, 8);
    await deliveries(one, "queued", 3);
    await deliveries(one, "leased", 2);
    await deliveries(other, "queued", 4);
    await deliveries(other, "leased", 1);
    expect(await markFullQueues(t.db, 4)).toEqual({ filled: [other], drained: [], full: 1, depth: 10 });
    // Nothing owed: a depth of 0, the acknowledged and expired still there.
    await t.db.rows(sql`DELETE FROM deliveries WHERE state IN ('queued', 'leased')`);
    expect(await markFullQueues(t.db, 4)).toEqual({ filled: [], drained: [other], full: 0, depth: 0 });
  });

  test("counts the queue through its indexes, not the deliveries kept for the retention", async () => {
    await settledDeliveries(t.db, t, 30_000, "full-queues");
    await t.db.rows(sql`ANALYZE deliveries`);
    await deliveries(t.memberId, "queued", 1);
    await deliveries(t.memberId, "leased", 1);
    expect((await markFullQueues(t.db, 100)).depth).toBe(2);
    const plan = await planOf(t.backend.databaseUrl ?? t.db, (recorder) => markFullQueues(recorder, 100));
    expect(plan).toContain("deliveries_queued_idx");
    expect(plan).not.toMatch(/Seq Scan on deliveries/);
  });
});

describe("the send statements and a marked member", () => {
  // Only each test's own member is marked.
  beforeEach(async () => {
    await t.db.rows(sql`UPDATE members SET queue_full_at = NULL WHERE queue_full_at IS NOT NULL`);
  });

  /** A member of the file's mesh with a pubkey a send can name, marked full or not; its id and pubkey. */
  async function member(full: boolean): Promise<{ id: string; pubkey: string }> {
    const pubkey = crypto.getRandomValues(new Uint8Array(32)).reduce((hex, b) => hex + b.toString(16).padStart(2, "0"), "");
    const [row] = await t.db.rows<{ id: string }>(sql`
      INSERT INTO members (mesh_id, pubkey, display_name, queue_full_at)
      VALUES (${t.meshId}::uuid, ${pubkey}, 'm', CASE WHEN ${full} THEN now() END) RETURNING id`);
    return { id: row!.id, pubkey };
  }

  for (const recipientsHere of [false, true]) {
    test(`${recipientsHere ? "the direct" : "the"} send statement: nothing for the full member alone, the others' deliveries for many`, async () => {
      const [full, open] = [await member(true), await member(false)];
      const holders: LocalHolders = { instanceId: crypto.randomUUID(), unavailable: [], leaseSeconds: 30, notify: false, recipientsHere };
      const toFull = newMessage(t.meshId, t.memberId, full.pubkey);
      const toOpen = newMessage(t.meshId, t.memberId, open.pubkey);
      expect(writtenDirectly([toFull, toOpen], holders)).toBe(recipientsHere);
      const [a, b] = await enqueueSends(t.db, [toFull, toOpen], holders);
      // Held back as a target not known, so the statement writes it nothing; queueFull says why.
      expect(a).toMatchObject({ known: false, queueFull: true, inserted: false, fullQueues: 1 });
      expect(b).toMatchObject({ known: true, senderLive: true, queueFull: false, inserted: true, recipients: JSON.stringify([open.id]) });

      const [everyone] = await enqueueSends(t.db, [newMessage(t.meshId, t.memberId, "*")], holders);
      expect(everyone).toMatchObject({ queueFull: false, inserted: true, fullQueues: 1 });
      expect(JSON.parse(everyone!.recipients)).not.toContain(full.id);
      expect(JSON.parse(everyone!.recipients)).toContain(open.id);
      const written = await t.db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM deliveries WHERE recipient_member_id = ${full.id}::uuid`);
      expect(written[0]!.n).toBe(0);
    });
  }

  // The mark's first test of its own, in the insert of the messages, halved
  // the rows the planner expected to be written, and the direct statement
  // then read the messages it inserted once per delivery (100 × 100).
  for (const recipientsHere of [false, true]) {
    test(`${recipientsHere ? "the direct" : "the"} send statement reads each of its own CTEs once, on members analyzed (generic plan, run)`, async () => {
      const [mesh] = await t.db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES (${`plan-${recipientsHere}`}, 'p') RETURNING id`);
      const crowd = await t.db.rows<{ pubkey: string }>(sql`
        INSERT INTO members (mesh_id, pubkey, display_name)
        SELECT ${mesh!.id}::uuid, md5(g::text) || md5(g::text || 'k'), 'm' || g FROM generate_series(1, 100) g RETURNING pubkey`);
      await t.db.rows(sql`ANALYZE members`);
      const batch = crowd.map((m) => newMessage(mesh!.id, t.memberId, m.pubkey));
      const holders: LocalHolders = { instanceId: crypto.randomUUID(), unavailable: [], leaseSeconds: 30, notify: false, recipientsHere };
      const plan = await planOf(t.backend.databaseUrl ?? t.db, (recorder) => enqueueSends(recorder, batch, holders), { generic: true, analyze: true });
      const rescans = cteRescans(plan);
      expect(rescans).toEqual([]);
    });
  }
});
