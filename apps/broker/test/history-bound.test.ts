// The bound on a channel's history (HISTORY_MAX_PER_CHANNEL, store/queue/
// history-bound.ts) against a real database: which messages the prune takes
// beyond a channel's newest N and which stay (owed, within the settled
// retention, another channel, another mesh, direct), their deliveries going
// with them; where the next tick's visit of channels starts; and, with the
// generic plan the broker's pool (or its embedded database) uses, that a
// tick reads the channels through their index and not the messages sent
// within the settled retention.
import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { FROM_THE_OLDEST, pruneMessages, type Retention } from "../src/store/queue/prune.ts";
import { EVERY_DELIVERY } from "./support/acked.ts";
import { agedMessage, noMessages } from "./support/aged-messages.ts";
import { planOf, rowsReadFrom } from "./support/plans.ts";
import { meshWithMember, useMeshDatabase } from "./support/scratch-db.ts";

const HOUR = 3600;
const DAY = 86_400;
const UNBOUNDED: Retention = { settledSeconds: HOUR, historySeconds: 7 * DAY };
const bounded = (max: number): Retention => ({ ...UNBOUNDED, historyMaxPerChannel: max });
const t = useMeshDatabase("bound");

/**
 * A message of `meshId` to `target`, sent `ageSeconds` ago and expiring
 * `expiresInSeconds` from now, with one delivery in `state` (or none); sent
 * after every message made before it (seq).
 */
const message = (meshId: string, target: string, ageSeconds: number, state: string | null, expiresInSeconds = DAY): Promise<string> =>
  agedMessage(t.db, { meshId, memberId: t.memberId }, target, ageSeconds, expiresInSeconds, state);

const left = async () => new Set((await t.db.rows<{ id: string }>(sql`SELECT id::text FROM messages`)).map((r) => r.id));

describe("the bound on a channel's history", () => {
  test("a channel keeps its newest N; beyond them the settled messages past the settled retention go with their deliveries, the others stay", async () => {
    await noMessages(t.db);
    const other = await meshWithMember(t.db, "bound-other");
    const room = t.meshId;
    // Oldest first: seq follows the order they are made in.
    const cases = {
      "beyond, settled, 2 h old": [await message(room, "#room", 2 * HOUR, "acked"), true],
      "beyond, still queued, 2 h old": [await message(room, "#room", 2 * HOUR, "queued"), false],
      "beyond, still leased, 2 h old": [await message(room, "#room", 2 * HOUR, "leased"), false],
      "beyond, expired 2 h ago": [await message(room, "#room", 4 * HOUR, "expired", -2 * HOUR), true],
      "beyond, expired 10 min ago": [await message(room, "#room", 4 * HOUR, "expired", -600), false],
      "beyond, sent to nobody, 2 h old": [await message(room, "#room", 2 * HOUR, null), true],
      // Not marked yet: it stays until the expiry sweep counts it.
      "beyond, queued, past its TTL by 2 h": [await message(room, "#room", 4 * HOUR, "queued", -2 * HOUR), false],
      "beyond, queued, past its TTL by 10 min": [await message(room, "#room", 4 * HOUR, "queued", -600), false],
      "beyond, settled, 30 min old": [await message(room, "#room", 30 * 60, "acked"), false],
      "newest 3rd, settled, 2 h old": [await message(room, "#room", 2 * HOUR, "acked"), false],
      "newest 2nd, settled, 10 min old": [await message(room, "#room", 600, "acked"), false],
      "newest, settled, 10 min old": [await message(room, "#room", 600, "acked"), false],
      "another channel within its bound, settled, 2 h old": [await message(room, "#other", 2 * HOUR, "acked"), false],
      // Newer than every #room message of the first mesh: were the channel its name alone, they would put those beyond the bound.
      "the same name in another mesh, settled, 2 h old (1)": [await message(other.meshId, "#room", 2 * HOUR, "acked"), false],
      "the same name in another mesh, settled, 2 h old (2)": [await message(other.meshId, "#room", 2 * HOUR, "acked"), false],
      "the same name in another mesh, settled, 2 h old (3)": [await message(other.meshId, "#room", 2 * HOUR, "acked"), false],
      "direct, settled, 30 min old (1)": [await message(room, "k", 30 * 60, "acked"), false],
      "direct, settled, 30 min old (2)": [await message(room, "k", 30 * 60, "acked"), false],
      "direct, settled, 30 min old (3)": [await message(room, "k", 30 * 60, "acked"), false],
      "direct, settled, 30 min old (4)": [await message(room, "k", 30 * 60, "acked"), false],
    } as const;
    const goes = Object.values(cases).filter(([, gone]) => gone).map(([id]) => id);

    // Unbounded (the default): history is kept for its retention.
    expect((await pruneMessages(t.db, UNBOUNDED, 5000)).removed).toBe(0);

    expect((await pruneMessages(t.db, bounded(3), 5000)).removed).toBe(goes.length);
    const kept = await left();
    expect(Object.fromEntries(Object.entries(cases).map(([name, [id]]) => [name, !kept.has(id)]))).toEqual(
      Object.fromEntries(Object.entries(cases).map(([name, [, gone]]) => [name, gone])),
    );
    // Their deliveries went with them, owed and acknowledged.
    const [rest] = await t.db.rows<{ n: number }>(sql`
      SELECT count(*)::int AS n FROM ${sql.raw(EVERY_DELIVERY)} d WHERE d.message_id::text = ANY (${`{${goes.join(",")}}`}::text[])`);
    expect(rest!.n).toBe(0);
    // Nothing more goes at the next tick.
    expect((await pruneMessages(t.db, bounded(3), 5000)).removed).toBe(0);
  });

  test("a tick takes at most its limit beyond the bound, and the next starts at the same channels again", async () => {
    await noMessages(t.db);
    for (let i = 0; i < 5; i++) await message(t.meshId, "#busy", 2 * HOUR, "acked");
    const newest = await message(t.meshId, "#busy", 2 * HOUR, "acked");
    const first = await pruneMessages(t.db, bounded(1), 2, FROM_THE_OLDEST);
    expect(first.removed).toBe(2);
    expect(first.next.bounded).toBeNull();
    const second = await pruneMessages(t.db, bounded(1), 2, first.next);
    expect(second.removed).toBe(2);
    expect((await pruneMessages(t.db, bounded(1), 2, second.next)).removed).toBe(1);
    expect(await left()).toEqual(new Set([newest]));
  });

  test("a tick visits as many channels as the bound allows, and the next starts after the last it visited", async () => {
    await noMessages(t.db);
    // A bound of 50,000 reads at most 100,000 newest messages a tick: two channels.
    for (const name of ["#a", "#b", "#c"]) await message(t.meshId, name, 2 * HOUR, "acked");
    const first = await pruneMessages(t.db, bounded(50_000), 5000, FROM_THE_OLDEST);
    expect(first.next.bounded).toEqual({ meshId: t.meshId, channel: "#b" });
    const second = await pruneMessages(t.db, bounded(50_000), 5000, first.next);
    expect(second.next.bounded).toBeNull();
  });

  test("a tick reads the channels through their index, not the table, nor the messages sent within the settled retention (generic plan)", async () => {
    await noMessages(t.db);
    const CHANNELS = 4;
    const PER_CHANNEL = 50_000;
    const OLD = 10;
    const MAX = 100;
    // 200,000 channel messages in four channels, the first ten of each sent two hours ago and settled (sent to nobody),
    // the rest just now (after them all, as seq and created_at go together).
    await t.db.rows(sql`
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, created_at, expires_at)
      SELECT ${t.meshId}::uuid, ${t.memberId}::uuid, '#c' || c, 'now', 'n', 'c',
             CASE WHEN g <= ${OLD} THEN now() - interval '2 hours' ELSE now() END, now() + interval '1 day'
      FROM generate_series(1, ${CHANNELS}) c, generate_series(1, ${PER_CHANNEL}) g
      ORDER BY g > ${OLD}, c, g`);
    await t.db.rows(sql`ANALYZE messages`);
    const plan = (analyze: boolean) =>
      planOf(t.backend.databaseUrl ?? t.db, (recorder) => pruneMessages({ transaction: (work) => work(recorder) }, bounded(MAX), 5000), {
        generic: true,
        analyze,
      });
    const planned = await plan(false);
    expect(planned).toContain("messages_channel_history_idx");
    expect(planned).not.toMatch(/Seq Scan on messages/);
    expect(planned).not.toMatch(/Seq Scan on deliveries/);
    const analyzed = await plan(true);
    // The old messages of each channel, none of those sent just now; and each channel's newest N, to find the N-th.
    expect(rowsReadFrom(analyzed, "messages m")).toBe(CHANNELS * OLD);
    expect(analyzed).toMatch(new RegExp(`on messages k .*rows=${MAX}(?:\\.00)? loops=${CHANNELS}\\)`));
  });
});
