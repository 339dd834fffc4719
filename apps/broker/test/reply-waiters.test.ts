// Requests waiting for replies (services/reply-waiters.ts) against a real
// database: many requests of one member waiting at once cost one statement
// per news, not one per request — a backend with N requests waiting on one
// token would otherwise run N statements for every reply, N² in all; and
// sharing the looks changes nothing a single wait sees: its deadline holds
// under endless news, two waits on one request answer with its first reply, a failed
// look ends the wait with its error.
import { describe, expect, test } from "bun:test";
import type { Database, Statement } from "@switchboard/db";
import { backendKind, waitUntil } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { createLogger } from "../src/log.ts";
import { InstanceBus } from "../src/services/bus.ts";
import { QueuedWork } from "../src/services/queued-work.ts";
import { RecentEnds } from "../src/services/recent-ends.ts";
import { ReplyWaiters } from "../src/services/reply-waiters.ts";
import { holdReplies } from "../src/store/queue/reply.ts";
import { useBackendDatabase, useScratchDatabase } from "./support/scratch-db.ts";

const scratch = useScratchDatabase("reply-waiters");

interface Setup {
  mesh: string;
  asker: string;
  answerer: string;
}

let slug = 0;
async function meshOfTwo(db: Database): Promise<Setup> {
  const [ids] = await db.rows<Setup>(sql`
    WITH mesh AS (INSERT INTO meshes (slug, name) VALUES (${`waits-${++slug}`}, 'waits') RETURNING id),
    asker AS (INSERT INTO members (mesh_id, pubkey, display_name) SELECT id, 'asker', 'asker' FROM mesh RETURNING id),
    answerer AS (INSERT INTO members (mesh_id, pubkey, display_name) SELECT id, 'answerer', 'answerer' FROM mesh RETURNING id)
    SELECT mesh.id AS mesh, asker.id AS asker, answerer.id AS answerer FROM mesh, asker, answerer`);
  return ids!;
}

async function requestsOf(db: Database, { mesh, asker }: Setup, count: number): Promise<Array<{ id: string }>> {
  return db.rows<{ id: string }>(sql`
    INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
    SELECT ${mesh}::uuid, ${asker}::uuid, 'answerer', 'now', 'n', 'request ' || g, now() + interval '1 hour'
    FROM generate_series(1, ${count}) g RETURNING id`);
}

async function reply(db: Database, { mesh, asker, answerer }: Setup, requestId: string, text: string): Promise<void> {
  await db.rows(sql`
    WITH reply AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, reply_to, expires_at)
      VALUES (${mesh}::uuid, ${answerer}::uuid, 'asker', 'now', 'n', ${text}, ${requestId}::uuid, now() + interval '1 hour')
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
    SELECT id, ${asker}::uuid, 'now', now() + interval '1 hour' FROM reply`);
}

function waitersOn(db: Database) {
  const log = createLogger("silent", {});
  const queuedWork = new QueuedWork();
  const waiters = new ReplyWaiters(db, queuedWork, new InstanceBus(scratch.db, log), log, { maxWaiters: 100, maxWaitersPerMember: 100, clock: Date.now, releasedHolds: new RecentEnds(Date.now) });
  queuedWork.subscribe(waiters);
  return { waiters, queuedWork };
}

const waitFor = (waiters: ReplyWaiters, setup: Setup, requestId: string, ms: number, signal = new AbortController().signal) =>
  waiters.wait({ requestId, memberId: setup.asker, meshId: setup.mesh, deadline: Date.now() + ms, heldUntil: null, signal });

describe("ReplyWaiters", () => {
  test("20 requests of one member, their 20 replies one after another: each request gets its own, in one statement per news", async () => {
    const db = scratch.db;
    // The statements the waiters run outside a transaction: looking for replies.
    let looks = 0;
    const counted: Database = { ...db, rows: (query) => (looks++, db.rows(query)) };
    const { waiters, queuedWork } = waitersOn(counted);
    const setup = await meshOfTwo(db);
    const requests = await requestsOf(db, setup, 20);
    const answers = requests.map((r) => waitFor(waiters, setup, r.id, 30_000));
    for (const [i, request] of requests.entries()) {
      await reply(db, setup, request.id, `reply ${i}`);
      queuedWork.forMembers([setup.asker]);
    }
    const replies = await Promise.all(answers);
    expect(replies.map((r) => r?.replyTo)).toEqual(requests.map((r) => r.id));
    expect(replies.map((r) => r?.ciphertext)).toEqual(requests.map((_, i) => `reply ${i}`));
    // At most a look for the waiters' arrival and two per reply (one under way, one again after it).
    expect(looks).toBeLessThanOrEqual(2 + 2 * requests.length);
  });

  test("a wait ends at its deadline while news for its member keeps coming (it waits for its own look, not for the news to stop)", async () => {
    // Looks slower than the news: every look finds news came meanwhile and looks again.
    const slow: Database = { ...scratch.db, rows: async (query) => (await Bun.sleep(20), scratch.db.rows(query)) };
    const { waiters, queuedWork } = waitersOn(slow);
    const setup = await meshOfTwo(scratch.db);
    const [short, long] = await requestsOf(scratch.db, setup, 2);
    // A second wait of the member keeps its looks going.
    const stopLong = new AbortController();
    const longWait = waitFor(waiters, setup, long!.id, 10_000, stopLong.signal);
    // News until the short wait has answered: a wait that waited for the news to stop never would (the test times out).
    let news = true;
    const newsFor = (async () => {
      while (news) {
        queuedWork.forMembers([setup.asker]);
        await Bun.sleep(2);
      }
    })();
    const answer = await waitFor(waiters, setup, short!.id, 300);
    news = false;
    stopLong.abort();
    await Promise.all([newsFor, longWait]);
    expect(answer).toBeNull();
  });

  test("two waits on one request (retries with one key), two replies found by one look: both answer with the first", async () => {
    let looked = 0;
    const counted: Database = {
      ...scratch.db,
      rows: async <T>(query: Statement) => {
        try {
          return await scratch.db.rows<T>(query);
        } finally {
          looked++;
        }
      },
    };
    const { waiters, queuedWork } = waitersOn(counted);
    const setup = await meshOfTwo(scratch.db);
    const [request] = await requestsOf(scratch.db, setup, 1);
    const both = [waitFor(waiters, setup, request!.id, 30_000), waitFor(waiters, setup, request!.id, 30_000)];
    // Their first looks (the first wait's, then the second's) found nothing.
    await waitUntil(() => looked === 2 || undefined, 30_000, "the waits' first looks");
    await reply(scratch.db, setup, request!.id, "first");
    await reply(scratch.db, setup, request!.id, "second");
    queuedWork.forMembers([setup.asker]);
    expect((await Promise.all(both)).map((r) => r?.ciphertext)).toEqual(["first", "first"]);
    // The second stays owed, for the member's sockets.
    const [left] = await scratch.db.rows<{ state: string }>(sql`
      SELECT d.state FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE m.ciphertext = 'second' AND m.reply_to = ${request!.id}::uuid`);
    expect(left?.state).toBe("queued");
  });

  test("a wait whose deadline passes while the look under way takes its reply answers with it (the reply is acked)", async () => {
    // Every statement takes 300 ms more; the wait's deadline is 100 ms.
    const slow: Database = {
      ...scratch.db,
      rows: async <T>(query: Statement) => {
        const rows = await scratch.db.rows<T>(query);
        await Bun.sleep(300);
        return rows;
      },
    };
    const { waiters } = waitersOn(slow);
    const setup = await meshOfTwo(scratch.db);
    const [request] = await requestsOf(scratch.db, setup, 1);
    await reply(scratch.db, setup, request!.id, "in time");
    expect((await waitFor(waiters, setup, request!.id, 100))?.ciphertext).toBe("in time");
  });

  /** Looks that wait for release() before they run; started resolves at the first. */
  function gatedLooks() {
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let began = () => {};
    const started = new Promise<void>((resolve) => (began = resolve));
    const db: Database = {
      ...scratch.db,
      rows: async <T>(query: Statement) => {
        began();
        await gate;
        return scratch.db.rows<T>(query);
      },
    };
    return { db, started, release };
  }

  const replyState = async (setup: Setup, text: string) =>
    scratch.db.rows<{ state: string }>(sql`
      SELECT d.state FROM messages m CROSS JOIN LATERAL (
        SELECT state FROM deliveries WHERE message_id = m.id AND recipient_member_id = ${setup.asker}::uuid
        UNION ALL SELECT 'acked' FROM acked_deliveries WHERE message_id = m.id AND recipient_member_id = ${setup.asker}::uuid) d
      WHERE m.ciphertext = ${text}`);

  test("a caller that goes away while the look under way takes its reply: the reply goes back to the member's queue, with news of it", async () => {
    const looks = gatedLooks();
    const { waiters, queuedWork } = waitersOn(looks.db);
    const news: string[] = [];
    queuedWork.subscribe({ members: (ids) => news.push(...ids), meshes: () => {} });
    const setup = await meshOfTwo(scratch.db);
    const [request] = await requestsOf(scratch.db, setup, 1);
    await reply(scratch.db, setup, request!.id, "for a caller gone");
    const caller = new AbortController();
    const answer = waitFor(waiters, setup, request!.id, 30_000, caller.signal);
    await looks.started;
    caller.abort();
    looks.release();
    // Answered, it would go into a closed connection, acked: lost.
    expect(await answer).toBeNull();
    expect(await replyState(setup, "for a caller gone")).toEqual([{ state: "queued" }]);
    expect(news).toContain(setup.asker);
  });

  test("a caller that goes away while the look takes a reply another wait on the request holds too: that wait answers with it, and it stays acked", async () => {
    const looks = gatedLooks();
    const { waiters } = waitersOn(looks.db);
    const setup = await meshOfTwo(scratch.db);
    const [request] = await requestsOf(scratch.db, setup, 1);
    // Two waits hold the replies (a retry with the key beside the first).
    for (let i = 0; i < 2; i++) await holdReplies(scratch.db, request!.id, setup.asker, 30);
    await reply(scratch.db, setup, request!.id, "for the retry");
    const caller = new AbortController();
    const gone = waitFor(waiters, setup, request!.id, 30_000, caller.signal);
    await looks.started;
    const retry = waitFor(waiters, setup, request!.id, 30_000);
    caller.abort();
    looks.release();
    expect((await retry)?.ciphertext).toBe("for the retry");
    await gone;
    // Back in the queue as well, it would reach the member a second time.
    expect(await replyState(setup, "for the retry")).toEqual([{ state: "acked" }]);
  });

  test("a look that fails ends its waits with the error, at once (the caller answers without a reply)", async () => {
    const failing: Database = { ...scratch.db, rows: () => Promise.reject(new Error("the database went away")) };
    const { waiters } = waitersOn(failing);
    const setup = await meshOfTwo(scratch.db);
    const [request] = await requestsOf(scratch.db, setup, 1);
    // At its deadline it would answer null: it throws instead.
    await expect(waitFor(waiters, setup, request!.id, 30_000)).rejects.toThrow("the database went away");
  });
});

// Two instances on one server: the second's look ran before the first took
// the reply (or beside it, unable to see the take), and no news of the reply
// itself comes again.
describe.skipIf(backendKind === "embedded")("ReplyWaiters on two instances (needs DATABASE_URL)", () => {
  const server = useBackendDatabase();

  function instance() {
    const log = createLogger("silent", {});
    const bus = new InstanceBus(server.db, log);
    const queuedWork = new QueuedWork();
    const waiters = new ReplyWaiters(server.db, queuedWork, bus, log, { maxWaiters: 100, maxWaitersPerMember: 100, clock: Date.now, releasedHolds: new RecentEnds(Date.now) });
    queuedWork.subscribe(waiters);
    return { waiters, queuedWork, bus };
  }

  test("a reply taken on one for a request waited on on both: the other is told, and its wait answers with it", async () => {
    const here = instance();
    const elsewhere = instance();
    const unsubscribe = await elsewhere.bus.subscribe({
      queuedWork: (members) => elsewhere.queuedWork.forMembers(members),
      queuedWorkInMeshes: () => {},
      leased: () => {},
      relayed: () => {},
      replaced: () => {},
      revoked: () => {},
      tokenRevoked: () => {},
      stoppedElsewhere: () => {},
      holdsReleasedElsewhere: () => {},
      presence: () => {},
      resubscribed: () => {},
    });
    try {
      const setup = await meshOfTwo(server.db);
      const [request] = await requestsOf(server.db, setup, 1);
      // Both waits hold the replies, as their sends did.
      for (let i = 0; i < 2; i++) await holdReplies(server.db, request!.id, setup.asker, 30);
      const there = waitFor(elsewhere.waiters, setup, request!.id, 10_000);
      const local = waitFor(here.waiters, setup, request!.id, 10_000);
      await reply(server.db, setup, request!.id, "shared");
      // News of the reply reaches this instance only.
      here.queuedWork.forMembers([setup.asker]);
      expect((await local)?.ciphertext).toBe("shared");
      expect((await there)?.ciphertext).toBe("shared");
    } finally {
      await unsubscribe();
    }
  });
});
