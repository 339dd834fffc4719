// Pruning messages past their retention (store/queue/prune.ts), gone
// presences a batch at a time (store/housekeeping.ts), and what recently
// revoked members were still owed dropped (store/queue/drop.ts), against a
// real database: which messages go and which stay, and — with the generic
// plan the broker's pool (or its embedded database) uses — that a tick
// reaches them through the created_at indexes instead of reading the whole
// messages table.
import { describe, expect, test } from "bun:test";
import { backendKind } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { pruneAuditLog, pruneGonePresences } from "../src/store/housekeeping.ts";
import { ackDeliveries } from "../src/store/queue/ack.ts";
import { dropUndeliveredOfRevoked } from "../src/store/queue/drop.ts";
import { expireDeliveries } from "../src/store/queue/expire.ts";
import { PruneWalk } from "../src/services/prune-walk.ts";
import { requeue } from "../src/store/queue/requeue.ts";
import { FROM_THE_OLDEST, pruneMessages, type PruneFrom } from "../src/store/queue/prune.ts";
import { isoInstant } from "../src/store/sql.ts";
import { ackByHand, EVERY_DELIVERY } from "./support/acked.ts";
import { agedMessage, noMessages } from "./support/aged-messages.ts";
import { planOf, rowsReadFrom } from "./support/plans.ts";
import { settledDeliveries, useMeshDatabase } from "./support/scratch-db.ts";

const RETENTION = { settledSeconds: 3600, historySeconds: 86_400 };
const t = useMeshDatabase("prune");

/** A message created `ageSeconds` ago, expiring `expiresInSeconds` from now, with one delivery in `state` (or none). */
const message = (target: string, ageSeconds: number, expiresInSeconds: number, state: string | null): Promise<string> =>
  agedMessage(t.db, t, target, ageSeconds, expiresInSeconds, state);

describe("pruneMessages", () => {
  test("direct messages go after the settled retention, channel ones after the history retention; expired ones that long after they expired; owed ones stay", async () => {
    await noMessages(t.db);
    const HOUR = 3600;
    const DAY = 86_400;
    const cases = {
      "direct, settled, 2 h old": [await message("k", 2 * HOUR, DAY, "acked"), true],
      "direct, sent to nobody, 2 h old": [await message("k", 2 * HOUR, DAY, null), true],
      "direct, still queued, 2 h old": [await message("k", 2 * HOUR, DAY, "queued"), false],
      "direct, still leased, 2 h old": [await message("k", 2 * HOUR, DAY, "leased"), false],
      "direct, expired 2 h ago": [await message("k", 4 * HOUR, -2 * HOUR, "expired"), true],
      // Sent 4 h ago: past the settled retention by its age, but it expired only 10 min ago.
      "direct, expired 10 min ago": [await message("k", 4 * HOUR, -600, "expired"), false],
      // Not marked yet: the expiry sweep counts it as it marks it, so it stays until then.
      "direct, queued, past its TTL by 2 h": [await message("k", 4 * HOUR, -2 * HOUR, "queued"), false],
      "direct, settled, 10 min old": [await message("k", 600, DAY, "acked"), false],
      "channel, settled, 2 h old": [await message("#room", 2 * HOUR, DAY, "acked"), false],
      "channel, settled, 2 days old": [await message("#room", 2 * DAY, DAY, "acked"), true],
      "channel, still queued, 2 days old": [await message("#room", 2 * DAY, DAY, "queued"), false],
      "channel, expired 2 h ago, 2 days old": [await message("#room", 2 * DAY, -2 * HOUR, "expired"), true],
      "channel, expired 10 min ago, 2 days old": [await message("#room", 2 * DAY, -600, "expired"), false],
      "channel, queued, past its TTL by 2 h, 2 days old": [await message("#room", 2 * DAY, -2 * HOUR, "queued"), false],
    } as const;
    expect((await pruneMessages(t.db, RETENTION, 5000)).removed).toBe(Object.values(cases).filter(([, gone]) => gone).length);
    const left = new Set((await t.db.rows<{ id: string }>(sql`SELECT id FROM messages`)).map((r) => r.id));
    const gone = Object.fromEntries(Object.entries(cases).map(([name, [id]]) => [name, !left.has(id)]));
    expect(gone).toEqual(Object.fromEntries(Object.entries(cases).map(([name, [, goes]]) => [name, goes])));
    // Their deliveries went with them, owed and acknowledged.
    const [orphans] = await t.db.rows<{ n: number }>(sql`
      SELECT count(*)::int AS n FROM ${sql.raw(EVERY_DELIVERY)} d WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = d.message_id)`);
    expect(orphans!.n).toBe(0);
    const [acked] = await t.db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM acked_deliveries`);
    expect(acked!.n).toBe(2);
  });

  test("deliveries past their TTL leave only once the expiry sweep counted them, however many it leaves for its next rounds", async () => {
    await noMessages(t.db);
    const past = await Promise.all([1, 2, 3].map(() => message("k", 4 * 3600, -2 * 3600, "queued")));
    // A sweep of 2 (the broker's takes 5,000 a round) leaves one unmarked.
    expect(await expireDeliveries(t.db, 2)).toBe(2);
    expect((await pruneMessages(t.db, RETENTION, 5000)).removed).toBe(2);
    const left = async () => (await t.db.rows<{ id: string }>(sql`SELECT id FROM messages`)).map((r) => r.id);
    const [unmarked] = await left();
    expect(past).toContain(unmarked!);
    expect(await expireDeliveries(t.db, 2)).toBe(1);
    expect((await pruneMessages(t.db, RETENTION, 5000)).removed).toBe(1);
    expect(await left()).toEqual([]);
  });

  test("a request stays while its sender waits for the reply, whatever its age", async () => {
    await noMessages(t.db);
    const request = await message("k", 2 * 3600, 86_400, "acked");
    await t.db.rows(sql`UPDATE messages SET reply_wait_until = now() + interval '30 seconds' WHERE id = ${request}::uuid`);
    expect((await pruneMessages(t.db, RETENTION, 5000)).removed).toBe(0);
    await t.db.rows(sql`UPDATE messages SET reply_wait_until = now() - interval '1 second' WHERE id = ${request}::uuid`);
    expect((await pruneMessages(t.db, RETENTION, 5000)).removed).toBe(1);
  });

  test("a walk from where the last ended passes what that one passed while owed, and takes what passed its retention since", async () => {
    await noMessages(t.db);
    const HOUR = 3600;
    const owed = await message("k", 2 * HOUR, 86_400, "queued");
    const owedChannel = await message("#room", 2 * 86_400, 86_400, "queued");
    const first = await pruneMessages(t.db, RETENTION, 5000);
    expect(first.removed).toBe(0);
    expect(first.next.direct).not.toBeNull();
    expect(first.next.channel).not.toBeNull();
    await t.db.rows(ackByHand(sql`d.message_id IN (${owed}::uuid, ${owedChannel}::uuid)`));
    // Settled now, but behind the walk: left for a walk from the oldest.
    const second = await pruneMessages(t.db, RETENTION, 5000, first.next);
    expect(second.removed).toBe(0);
    // Sent 58.5 and 59 minutes ago (direct) and 23.5 h ago (channel): past
    // retentions shorter by two minutes and an hour, after the first walk's
    // cutoffs, so a walk from there under them takes what is settled.
    await message("k", 58.5 * 60, 86_400, "acked");
    const stillOwed = await message("k", 59 * 60, 86_400, "leased");
    await message("#room", 23.5 * HOUR, 86_400, "acked");
    const shorter = { settledSeconds: HOUR - 120, historySeconds: 86_400 - HOUR };
    const third = await pruneMessages(t.db, shorter, 5000, second.next);
    expect(third.removed).toBe(2);
    const left = async () => new Set((await t.db.rows<{ id: string }>(sql`SELECT id FROM messages`)).map((r) => r.id));
    expect(await left()).toEqual(new Set([owed, owedChannel, stillOwed]));
    expect((await pruneMessages(t.db, shorter, 5000, FROM_THE_OLDEST)).removed).toBe(2);
    expect(await left()).toEqual(new Set([stillOwed]));
  });

  test("a walk that took its limit starts the next one at the last message it took, not again behind it", async () => {
    await noMessages(t.db);
    const owed = await message("k", 2 * 3600 + 10, 86_400, "queued");
    await message("k", 2 * 3600 + 5, 86_400, "acked");
    const lastTaken = await message("k", 2 * 3600 + 4, 86_400, "acked");
    await message("k", 2 * 3600 + 3, 86_400, "acked");
    const [last] = await t.db.rows<{ at: string }>(sql`SELECT ${isoInstant(sql`created_at`)} AS at FROM messages WHERE id = ${lastTaken}::uuid`);
    const first = await pruneMessages(t.db, RETENTION, 2, FROM_THE_OLDEST);
    expect(first).toMatchObject({ removed: 2, next: { direct: last!.at } });
    // Fewer than the limit among channel messages: to its cutoff.
    expect(first.next.channel).not.toBeNull();
    // The owed message, settled now, is behind that walk: the next one
    // takes what follows, and only a walk from the oldest takes it.
    await t.db.rows(ackByHand(sql`d.message_id = ${owed}::uuid`));
    const second = await pruneMessages(t.db, RETENTION, 2, first.next);
    expect(second.removed).toBe(1);
    const left = async () => new Set((await t.db.rows<{ id: string }>(sql`SELECT id FROM messages`)).map((r) => r.id));
    expect(await left()).toEqual(new Set([owed]));
    expect((await pruneMessages(t.db, RETENTION, 2, FROM_THE_OLDEST)).removed).toBe(1);
  });

  test("a walk that took its limit among messages of one instant leaves the rest of that instant to the next", async () => {
    await noMessages(t.db);
    for (let i = 0; i < 3; i++) await message("k", 2 * 3600, 86_400, "acked");
    // Three messages of one instant: the walk stops after two of them.
    await t.db.rows(sql`UPDATE messages SET created_at = date_trunc('second', now()) - interval '2 hours'`);
    const first = await pruneMessages(t.db, RETENTION, 2, FROM_THE_OLDEST);
    expect(first.removed).toBe(2);
    expect((await pruneMessages(t.db, RETENTION, 2, first.next)).removed).toBe(1);
  });

  test.skipIf(backendKind !== "postgres")("an ack under way on a message past its TTL: the prune leaves the message to it, then takes it with its acked delivery", async () => {
    await noMessages(t.db);
    // Expired two hours ago, its delivery still leased (an ack on its way counts).
    const id = await message("k", 4 * 3600, -2 * 3600, "leased");
    let moved = () => {};
    let release = () => {};
    const movedNow = new Promise<void>((resolve) => (moved = resolve));
    const held = new Promise<void>((resolve) => (release = resolve));
    const ack = t.db.transaction(async (tx) => {
      expect(await ackDeliveries(tx, [{ memberId: t.memberId, messageId: id }])).toBe(1);
      moved();
      await held;
    });
    await movedNow;
    // Not waiting for the ack's row: the delivery it sees is leased, so the message is owed still.
    expect((await pruneMessages(t.db, RETENTION, 5000)).removed).toBe(0);
    release();
    await ack;
    expect((await pruneMessages(t.db, RETENTION, 5000)).removed).toBe(1);
    const [left] = await t.db.rows<{ messages: number; acked: number }>(sql`
      SELECT (SELECT count(*)::int FROM messages WHERE id = ${id}::uuid) AS messages,
             (SELECT count(*)::int FROM acked_deliveries WHERE message_id = ${id}::uuid) AS acked`);
    expect(left).toEqual({ messages: 0, acked: 0 });
  });

  test("a tick reads the prunable rows through the created_at indexes, not the whole table (generic plan)", async () => {
    // 40,000 young messages, none prunable: a scan would read them all every tick.
    await t.db.rows(sql`
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${t.meshId}::uuid, ${t.memberId}::uuid, CASE WHEN g % 2 = 0 THEN 'k' ELSE '#room' END, 'now', 'n', 'c', now() + interval '1 day'
      FROM generate_series(1, 40000) g`);
    await t.db.rows(sql`ANALYZE messages`);
    const plan = await planOf(t.backend.databaseUrl ?? t.db, (recorder) => pruneMessages({ transaction: (work) => work(recorder) }, RETENTION, 5000), {
      generic: true,
    });
    expect(plan).toContain("messages_direct_created_idx");
    expect(plan).toContain("messages_channel_created_idx");
    expect(plan).not.toMatch(/Seq Scan on messages/);
    // An owed delivery is looked up per message read, not hashed from the whole table.
    expect(plan).not.toMatch(/Seq Scan on deliveries/);
  });

  test("a walk from where the last ended does not read the messages that one passed while owed (generic plan)", async () => {
    await noMessages(t.db);
    const OWED = 10_000;
    await t.db.rows(sql`
      WITH m AS (
        INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, created_at, expires_at)
        SELECT ${t.meshId}::uuid, ${t.memberId}::uuid, CASE WHEN g % 2 = 0 THEN 'k' ELSE '#room' END, 'now', 'n', 'c',
               now() - interval '3 days', now() + interval '4 days'
        FROM generate_series(1, ${OWED}) g
        RETURNING id)
      INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
      SELECT id, ${t.memberId}::uuid, 'now', now() + interval '4 days' FROM m`);
    await t.db.rows(sql`ANALYZE messages`);
    const first = await pruneMessages(t.db, RETENTION, 5000);
    expect(first.removed).toBe(0);
    const read = async (from: PruneFrom) =>
      rowsReadFrom(
        await planOf(t.backend.databaseUrl ?? t.db, (recorder) => pruneMessages({ transaction: (work) => work(recorder) }, RETENTION, 5000, from), {
          generic: true,
          analyze: true,
        }),
        "messages m",
      );
    expect(await read(FROM_THE_OLDEST)).toBe(OWED);
    expect(await read(first.next)).toBe(0);
  });

  // On the embedded database a statement holds the broker's one thread: a
  // walk through an offline member's backlog of 300,000 held it for 3 s.
  test("a walk reads at most `scan` messages of a kind, and the walks after it go on from there to what settled beyond", async () => {
    await noMessages(t.db);
    for (let i = 0; i < 30; i++) await message("k", 3 * 3600 - i, 86_400, "queued");
    const beyond = await message("k", 2 * 3600, 86_400, "acked");
    let from: PruneFrom = FROM_THE_OLDEST;
    const removed: number[] = [];
    for (let walk = 0; walk < 4; walk++) {
      const pruned = await pruneMessages(t.db, RETENTION, 5, from, 10);
      removed.push(pruned.removed);
      from = pruned.next;
    }
    expect(removed).toEqual([0, 0, 0, 1]);
    const left = await t.db.rows<{ id: string }>(sql`SELECT id FROM messages WHERE id = ${beyond}::uuid`);
    expect(left).toEqual([]);
    // And of the messages read, `scan` at most.
    await t.db.rows(sql`
      WITH m AS (
        INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, created_at, expires_at)
        SELECT ${t.meshId}::uuid, ${t.memberId}::uuid, 'k', 'now', 'n', 'c', now() - interval '3 days' + g * interval '1 ms', now() + interval '4 days'
        FROM generate_series(1, 5000) g
        RETURNING id)
      INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
      SELECT id, ${t.memberId}::uuid, 'now', now() + interval '4 days' FROM m`);
    await t.db.rows(sql`ANALYZE messages`);
    const plan = await planOf(
      t.backend.databaseUrl ?? t.db,
      (recorder) => pruneMessages({ transaction: (work) => work(recorder) }, RETENTION, 500, FROM_THE_OLDEST, 1000),
      { generic: true, analyze: true },
    );
    expect(rowsReadFrom(plan, "messages m")).toBe(1000);
  });

  test("the walk's end is found among the messages past the cutoff: the young ones after them are not read (generic plan)", async () => {
    await noMessages(t.db);
    await t.db.rows(sql`
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${t.meshId}::uuid, ${t.memberId}::uuid, 'k', 'now', 'n', 'c', now() + interval '1 day'
      FROM generate_series(1, 1500) g`);
    await t.db.rows(sql`ANALYZE messages`);
    const plan = await planOf(
      t.backend.databaseUrl ?? t.db,
      (recorder) => pruneMessages({ transaction: (work) => work(recorder) }, RETENTION, 500, FROM_THE_OLDEST, 1000),
      { generic: true, analyze: true },
    );
    expect(rowsReadFrom(plan, "messages w")).toBe(0);
  });

  test("a walk that starts at an instant holding more than `scan` messages goes to its cutoff, so it moves on", async () => {
    await noMessages(t.db);
    for (let i = 0; i < 12; i++) await message("k", 2 * 3600, 86_400, "queued");
    await t.db.rows(sql`UPDATE messages SET created_at = date_trunc('second', now()) - interval '2 hours'`);
    const [at] = await t.db.rows<{ at: string }>(sql`SELECT ${isoInstant(sql`min(created_at)`)} AS at FROM messages`);
    const first = await pruneMessages(t.db, RETENTION, 5, { ...FROM_THE_OLDEST, direct: at!.at }, 10);
    expect(first.next.direct).not.toBe(at!.at);
    expect(Date.parse(first.next.direct!)).toBeGreaterThan(Date.parse(at!.at));
  });
});

describe("PruneWalk", () => {
  const prune = (from: PruneFrom) => pruneMessages(t.db, RETENTION, 5000, from);

  /** A walk (from the oldest every minute) whose first tick, at 0 ms, passed a message then owed and settled since; and its clock. */
  async function pastASettledMessage(): Promise<{ walk: PruneWalk; clock: { now: number } }> {
    await noMessages(t.db);
    const clock = { now: 0 };
    const walk = new PruneWalk(60_000, () => clock.now);
    const owed = await message("k", 2 * 3600, 86_400, "queued");
    expect(await walk.tick(prune)).toBe(0);
    await t.db.rows(ackByHand(sql`d.message_id = ${owed}::uuid`));
    return { walk, clock };
  }

  test("each tick starts where the last ended, and from the oldest message once the interval has passed", async () => {
    const { walk, clock } = await pastASettledMessage();
    clock.now = 59_999;
    expect(await walk.tick(prune)).toBe(0);
    clock.now = 60_000;
    expect(await walk.tick(prune)).toBe(1);
  });

  test("a prune that fails leaves the place where it was", async () => {
    const { walk, clock } = await pastASettledMessage();
    clock.now = 60_000;
    // Due from the oldest, and failed: the next tick is still due from the oldest.
    await expect(walk.tick(() => Promise.reject(new Error("connection lost")))).rejects.toThrow("connection lost");
    clock.now = 60_001;
    expect(await walk.tick(prune)).toBe(1);
  });
});

describe("pruneGonePresences", () => {
  test("presences gone longer than the retention go, a batch a tick; live and recent ones stay", async () => {
    const presences = (gone: string) => sql`
      INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name, disconnected_at)
      SELECT ${t.meshId}::uuid, ${t.memberId}::uuid, 'gone', 's' || g, 'n', ${sql.raw(gone)} FROM generate_series(1, 1200) g`;
    await t.db.rows(presences("now() - interval '2 days'"));
    await t.db.rows(presences("now() - interval '1 hour'"));
    await t.db.rows(presences("NULL"));
    const left = async () => (await t.db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM presences WHERE instance_id = 'gone'`))[0]!.n;
    expect(await pruneGonePresences(t.db, 86_400, 1000)).toBe(1000);
    expect(await left()).toBe(2600);
    expect(await pruneGonePresences(t.db, 86_400, 1000)).toBe(200);
    expect(await pruneGonePresences(t.db, 86_400, 1000)).toBe(0);
    expect(await left()).toBe(2400);
  });

  test("a tick reads what it prunes through the index on disconnected_at, not the whole table (generic plan)", async () => {
    await t.db.rows(sql`
      INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name, disconnected_at)
      SELECT ${t.meshId}::uuid, ${t.memberId}::uuid, 'recent', 's' || g, 'n', now() - interval '1 hour' FROM generate_series(1, 40000) g`);
    await t.db.rows(sql`ANALYZE presences`);
    const plan = await planOf(t.backend.databaseUrl ?? t.db, (recorder) => pruneGonePresences(recorder, 86_400, 1000), { generic: true });
    expect(plan).toContain("presences_gone_idx");
    expect(plan).not.toMatch(/Seq Scan on presences/);
  });
});

describe("pruneAuditLog", () => {
  test("audit rows past the retention go, the oldest first; younger ones stay", async () => {
    await t.db.rows(sql`
      INSERT INTO audit_log (at, event, meta)
      SELECT now() - make_interval(days => g), 'pruned-test', jsonb_build_object('day', g) FROM generate_series(1, 40) g`);
    await pruneAuditLog(t.db, 30 * 86_400);
    const left = await t.db.rows<{ day: number }>(sql`SELECT (meta->>'day')::int AS day FROM audit_log WHERE event = 'pruned-test' ORDER BY 1`);
    expect(left.map((r) => r.day)).toEqual(Array.from({ length: 29 }, (_, i) => i + 1));
  });

  test("a tick reads what it prunes through the index on at, not the whole table (generic plan)", async () => {
    await t.db.rows(sql`INSERT INTO audit_log (event) SELECT 'recent' FROM generate_series(1, 40000)`);
    await t.db.rows(sql`ANALYZE audit_log`);
    const plan = await planOf(t.backend.databaseUrl ?? t.db, (recorder) => pruneAuditLog(recorder, 30 * 86_400), { generic: true });
    expect(plan).toContain("audit_log_at_idx");
    expect(plan).not.toMatch(/Seq Scan on audit_log/);
  });
});

describe("dropUndeliveredOfRevoked", () => {
  const member = async (name: string, revokedAgo: string | null) =>
    (
      await t.db.rows<{ id: string }>(sql`
        INSERT INTO members (mesh_id, pubkey, display_name, revoked_at)
        VALUES (${t.meshId}::uuid, ${crypto.randomUUID()}, ${name}, now() - ${revokedAgo}::interval)
        RETURNING id`)
    )[0]!.id;

  /** `count` deliveries to `recipient` in `state`; leased ones held by a presence of none, for 30 s. */
  const owe = async (recipient: string, state: string, count = 1, ciphertext = "revoked") => {
    const ids = await t.db.rows<{ id: string }>(sql`
      WITH m AS (
        INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
        SELECT ${t.meshId}::uuid, ${t.memberId}::uuid, 'k', 'now', 'n', ${ciphertext}, now() + interval '1 day'
        FROM generate_series(1, ${count}) RETURNING id)
      INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, acked_at, lease_presence_id, lease_expires_at)
      SELECT id, ${recipient}::uuid, 'now', now() + interval '1 day', ${{ acked: "leased", "acked in place": "acked" }[state] ?? state},
             CASE WHEN ${state} = 'acked in place' THEN now() END,
             CASE WHEN ${state} IN ('leased', 'acked') THEN gen_random_uuid() END,
             CASE WHEN ${state} IN ('leased', 'acked') THEN now() + interval '30 seconds' END
      FROM m
      RETURNING id`);
    if (state === "acked") await t.db.rows(ackByHand(sql`d.id = ANY (${`{${ids.map((d) => d.id).join(",")}}`}::bigint[])`));
  };

  test("drops what members revoked within the window have queued; a lease comes back to the queue at its end and is dropped then; acknowledged deliveries and others' stay", async () => {
    const recent = await member("revoked a minute ago", "1 minute");
    const long = await member("revoked two hours ago", "2 hours");
    const live = await member("live", null);
    // "acked in place": as an instance from before migration 0010 acks, in deliveries.
    for (const recipient of [recent, long, live]) for (const state of ["queued", "leased", "acked", "acked in place"]) await owe(recipient, state);
    const left = async () =>
      (
        await t.db.rows<{ name: string; state: string }>(sql`
          SELECT mb.display_name AS name, d.state FROM ${sql.raw(EVERY_DELIVERY)} d JOIN members mb ON mb.id = d.recipient_member_id
          JOIN messages m ON m.id = d.message_id WHERE m.ciphertext = 'revoked' ORDER BY 1, 2`)
      ).map((r) => `${r.name}: ${r.state}`);
    const others = ["live: acked", "live: acked", "live: leased", "live: queued"];
    const revokedLong = ["revoked two hours ago: acked", "revoked two hours ago: acked", "revoked two hours ago: leased", "revoked two hours ago: queued"];
    expect(await dropUndeliveredOfRevoked(t.db, 3600)).toBe(1);
    expect(await left()).toEqual([...others, "revoked a minute ago: acked", "revoked a minute ago: acked", "revoked a minute ago: leased", ...revokedLong]);
    // The lease runs out, and the sweep puts it back in the queue.
    await t.db.rows(sql`UPDATE deliveries SET lease_expires_at = now() - interval '1 second' WHERE recipient_member_id = ${recent}::uuid AND state = 'leased'`);
    expect(await requeue(t.db, { expiredLeases: { limit: 10 } })).toEqual([recent]);
    expect(await dropUndeliveredOfRevoked(t.db, 3600)).toBe(1);
    expect(await left()).toEqual([...others, "revoked a minute ago: acked", "revoked a minute ago: acked", ...revokedLong]);
  });

  test("after a revocation, the tick reaches the owed deliveries through the queue's partial indexes (generic plan)", async () => {
    await t.db.rows(sql`UPDATE members SET revoked_at = now() WHERE id = ${t.memberId}::uuid`);
    await settledDeliveries(t.db, t, 30_000, "settled");
    await t.db.rows(sql`ANALYZE`);
    const plan = await planOf(t.backend.databaseUrl ?? t.db, (recorder) => dropUndeliveredOfRevoked(recorder, 3600), { generic: true });
    expect(plan).not.toMatch(/Seq Scan on deliveries/);
  });

  test("the tick reads a revoked member's queued deliveries, not every lease (generic plan, analyzed)", async () => {
    const revoked = await member("revoked with leases all around", "1 minute");
    const live = await member("live with many leases", null);
    await owe(revoked, "queued", 3, "few");
    await owe(live, "leased", 10_000, "many");
    await t.db.rows(sql`ANALYZE`);
    const plan = await planOf(t.backend.databaseUrl ?? t.db, (recorder) => dropUndeliveredOfRevoked(recorder, 3600), { generic: true, analyze: true });
    expect(plan).toMatch(/Delete on deliveries/);
    expect(rowsReadFrom(plan, "deliveries")).toBeGreaterThanOrEqual(3);
    expect(rowsReadFrom(plan, "deliveries")).toBeLessThan(100);
  });
});
