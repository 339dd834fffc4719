// PROTOCOL.md §10 channel history: pages oldest first, `before` and `limit`
// (clamped), members only, retention independent of acknowledgement, and a
// plan that reads the history index instead of scanning messages.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, migrate, type Database } from "@switchboard/db";
import {
  AdminClient,
  freshBackend,
  PeerPool,
  setupMesh,
  spawnBroker,
  TEST_ADMIN_TOKEN,
  useTestBroker,
  type Frame,
  type SetupMember,
  type TestPeer,
  waitUntil,
} from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { HISTORY_PAGE_BYTES } from "@switchboard/protocol";
import { historyQuery } from "../src/store/history.ts";
import { sendMany, str } from "./support/messaging.ts";

const pool = new PeerPool();

const broker = useTestBroker({ SEND_RATE_LIMIT_PER_MIN: "100000" });
afterAll(async () => {
  await pool.closeAll();
});

const history = (peer: TestPeer, frame: Record<string, unknown>) => peer.request({ type: "history", ...frame });
const ids = (reply: Frame) => (reply.messages as Frame[]).map((m) => str(m.messageId));

async function sendTexts(peer: TestPeer, target: string, texts: string[]): Promise<string[]> {
  const acks = await sendMany(
    peer,
    texts.map((t) => ({ type: "send", targetSpec: target, nonce: "plain", ciphertext: btoa(t) })),
  );
  return acks.map((a) => str(a.messageId));
}

describe("channel history", () => {
  test("a member reads the channel's messages oldest first, including its own and those sent before it joined", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["ann", "ben", "late"] });
    const [ann, ben, late] = members as [SetupMember, SetupMember, SetupMember];
    const a = await pool.connect(broker.wsUrl, ann, mesh.id);
    const b = await pool.connect(broker.wsUrl, ben, mesh.id);
    await a.request({ type: "join", channel: "#room" });
    await b.request({ type: "join", channel: "#room" });
    const sent = [...(await sendTexts(a, "#room", ["a1", "a2"])), ...(await sendTexts(b, "#room", ["b1"]))];
    await a.request({ type: "join", channel: "#other" });
    await sendTexts(a, "#other", ["not in #room"]);
    await a.send(ben.pubkey);
    await a.send("#room", { ephemeral: true });

    const l = await pool.connect(broker.wsUrl, late, mesh.id);
    expect(await history(l, { target: "#room" })).toMatchObject({ type: "error", code: "forbidden" });
    await l.request({ type: "join", channel: "#room" });
    const page = await history(l, { target: "#room" });
    expect(page).toMatchObject({ type: "history", target: "#room" });
    expect(ids(page)).toEqual(sent);
    const first = (page.messages as Frame[])[0]!;
    expect(first).toMatchObject({ type: "push", meshId: mesh.id, senderPubkey: ann.pubkey, targetSpec: "#room", nonce: "plain", attempt: 0, replyTo: null });
    expect(atob(str(first.ciphertext))).toBe("a1");
    expect(ids(await history(a, { target: "#room" }))).toEqual(sent);
  });

  test("a member that left the channel is no longer a current member: forbidden, until it joins again", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["ann", "ben"] });
    const [ann, ben] = members as [SetupMember, SetupMember];
    const a = await pool.connect(broker.wsUrl, ann, mesh.id);
    const b = await pool.connect(broker.wsUrl, ben, mesh.id);
    await a.request({ type: "join", channel: "#gone" });
    await b.request({ type: "join", channel: "#gone" });
    const sent = await sendTexts(a, "#gone", ["g1"]);
    expect(ids(await history(b, { target: "#gone" }))).toEqual(sent);
    await b.request({ type: "leave", channel: "#gone" });
    expect(await history(b, { target: "#gone" })).toMatchObject({ type: "error", code: "forbidden" });
    await b.request({ type: "join", channel: "#gone" });
    expect(ids(await history(b, { target: "#gone" }))).toEqual(sent);
  });

  test("a channel message whose deliveries expired unacknowledged stays in history", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["ann", "ben"] });
    const [ann, ben] = members as [SetupMember, SetupMember];
    const a = await pool.connect(broker.wsUrl, ann, mesh.id);
    const b = await pool.connect(broker.wsUrl, ben, mesh.id);
    await a.request({ type: "join", channel: "#brief" });
    await b.request({ type: "join", channel: "#brief" });
    await b.close();
    const [ack] = await sendMany(a, [{ type: "send", targetSpec: "#brief", nonce: "plain", ciphertext: btoa("short-lived"), ttlSeconds: 1 }]);
    const id = str(ack!.messageId);
    await waitUntil(
      async () => {
        const res = await fetch(`${broker.url}/v1/messages/${id}`, { headers: { authorization: `Bearer ${broker.adminToken}` } });
        const view = (await res.json()) as { recipients: Array<{ state: string }> };
        return view.recipients.length === 1 && view.recipients.every((r) => r.state === "expired") ? true : undefined;
      },
      15_000,
      "the delivery to ben expired",
    );
    expect(ids(await history(a, { target: "#brief" }))).toEqual([id]);
  });

  test("pages: before (exclusive) and limit walk back without gaps; limit is clamped to 200", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["writer"] });
    const w = await pool.connect(broker.wsUrl, members[0]!, mesh.id);
    await w.request({ type: "join", channel: "#log" });
    const sent = await sendTexts(w, "#log", Array.from({ length: 230 }, (_, i) => `m${i}`));

    const latest = await history(w, { target: "#log" });
    expect(ids(latest)).toEqual(sent.slice(-50));
    const clamped = await history(w, { target: "#log", limit: 1000 });
    expect(ids(clamped)).toEqual(sent.slice(-200));

    const walked: string[] = [];
    let before: string | undefined;
    for (;;) {
      const page = await history(w, { target: "#log", limit: 70, ...(before ? { before } : {}) });
      const pageIds = ids(page);
      if (pageIds.length === 0) break;
      walked.unshift(...pageIds);
      before = pageIds[0];
    }
    expect(walked).toEqual(sent);
    expect(ids(await history(w, { target: "#log", before: crypto.randomUUID() }))).toEqual([]);
    expect(await history(w, { target: "#log", limit: 0 })).toMatchObject({ type: "error", code: "invalid" });
    expect(await history(w, { target: "log" })).toMatchObject({ type: "error", code: "invalid" });
  });

  test("a limit past the largest safe integer, or past what a double holds, is clamped to 200 as well; a fraction is invalid", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["writer"] });
    const w = await pool.connect(broker.wsUrl, members[0]!, mesh.id);
    await w.request({ type: "join", channel: "#big" });
    const sent = await sendTexts(w, "#big", Array.from({ length: 201 }, (_, i) => `m${i}`));
    for (const limit of [2 ** 53, 1e20, Number.MAX_VALUE]) {
      const page = await history(w, { target: "#big", limit });
      expect({ limit, type: page.type, ids: page.type === "history" ? ids(page) : page }).toEqual({ limit, type: "history", ids: sent.slice(-200) });
    }
    // Past what a double holds: JSON text reads 1e999 as Infinity, still a number above 200. Below 1 it is invalid however far.
    w.sendRaw('{"type":"history","target":"#big","limit":1e999,"reqId":"beyond"}');
    const beyond = await w.nextFrame((f) => f.reqId === "beyond");
    expect({ type: beyond.type, ids: beyond.type === "history" ? ids(beyond) : beyond }).toEqual({ type: "history", ids: sent.slice(-200) });
    w.sendRaw('{"type":"history","target":"#big","limit":-1e999,"reqId":"below"}');
    expect(await w.nextFrame((f) => f.reqId === "below")).toMatchObject({ type: "error", code: "invalid" });
    expect(await history(w, { target: "#big", limit: 1.5 })).toMatchObject({ type: "error", code: "invalid" });
  });

  test("more: whether older messages are left, at the limit and before it", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["writer"] });
    const w = await pool.connect(broker.wsUrl, members[0]!, mesh.id);
    await w.request({ type: "join", channel: "#few" });
    const sent = await sendTexts(w, "#few", ["a", "b", "c"]);
    expect(await history(w, { target: "#few", limit: 2 })).toMatchObject({ more: true });
    expect(await history(w, { target: "#few", limit: 3 })).toMatchObject({ more: false });
    expect(await history(w, { target: "#few", limit: 2, before: sent[2] })).toMatchObject({ more: false });
    expect(await history(w, { target: "#few", before: sent[0] })).toMatchObject({ messages: [], more: false });
  });

  test(`a page of large messages ends before its content passes HISTORY_PAGE_BYTES (${HISTORY_PAGE_BYTES}); walked back by before, the pages hold them all`, async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["writer"] });
    const w = await pool.connect(broker.wsUrl, members[0]!, mesh.id);
    await w.request({ type: "join", channel: "#big" });
    const size = 60_000;
    const acks = await sendMany(
      w,
      Array.from({ length: 40 }, (_, i) => ({ type: "send", targetSpec: "#big", nonce: "plain", ciphertext: String(i % 10).repeat(size) })),
    );
    const sent = acks.map((a) => str(a.messageId));
    const content = (m: Frame) => str(m.nonce).length + str(m.ciphertext).length;
    const perPage = Math.floor(HISTORY_PAGE_BYTES / (size + "plain".length));
    const walked: string[] = [];
    const pages: Array<{ count: number; more: unknown }> = [];
    let before: string | undefined;
    do {
      const page = await history(w, { target: "#big", limit: 200, ...(before ? { before } : {}) });
      const messages = page.messages as Frame[];
      expect(messages.reduce((sum, m) => sum + content(m), 0)).toBeLessThanOrEqual(HISTORY_PAGE_BYTES);
      pages.push({ count: messages.length, more: page.more });
      walked.unshift(...ids(page));
      before = ids(page)[0];
    } while (pages.at(-1)!.more === true);
    expect(pages).toEqual([
      { count: perPage, more: true },
      { count: perPage, more: true },
      { count: 40 - 2 * perPage, more: false },
    ]);
    expect(walked).toEqual(sent);
  });
});

/** Sends the same id until the broker no longer knows it (its message was pruned); returns that ack. */
async function resendUntilNew(peer: TestPeer, target: string, id: string): Promise<Frame> {
  const until = Date.now() + 90_000;
  while (Date.now() < until) {
    const ack = await peer.send(target, { id });
    if (ack.type !== "ack") throw new Error(`send failed: ${JSON.stringify(ack)}`);
    if (ack.duplicate !== true) return ack;
    await Bun.sleep(100);
  }
  throw new Error(`${id} was not pruned within 90 s`);
}

describe("history read within a member's bytes a minute", () => {
  const limited = useTestBroker({ HISTORY_BYTES_PER_MIN: "3000", SEND_RATE_LIMIT_PER_MIN: "100000" });

  test("past HISTORY_BYTES_PER_MIN of content read, the member's next page is refused rate_limited; another member reads on", async () => {
    const { mesh, members } = await setupMesh(limited.admin, { members: ["reader", "other"] });
    const [reader, other] = members as [SetupMember, SetupMember];
    const r = await pool.connect(limited.wsUrl, reader, mesh.id);
    const o = await pool.connect(limited.wsUrl, other, mesh.id);
    await r.request({ type: "join", channel: "#big" });
    await o.request({ type: "join", channel: "#big" });
    // Each message's content: "plain" and 1,336 bytes of base64, 1,341 bytes.
    const sent = await sendTexts(r, "#big", Array.from({ length: 4 }, (_, i) => String(i).repeat(1002)));

    // 0, 1,341 and 2,682 bytes read before each page: each begins within the 3,000; the third ends past them.
    let before: string | undefined;
    for (const expected of [sent[3], sent[2], sent[1]]) {
      const page = await history(r, { target: "#big", limit: 1, ...(before === undefined ? {} : { before }) });
      expect(ids(page)).toEqual([str(expected)]);
      before = str(expected);
    }
    const refused = await history(r, { target: "#big", limit: 1, before });
    expect(refused).toMatchObject({ type: "error", code: "rate_limited" });
    expect(str(refused.message)).toContain("3000 bytes of history");
    expect(ids(await history(o, { target: "#big" }))).toEqual(sent);
  });
});

describe("history retention", () => {
  test("acknowledged channel messages stay for history while settled direct messages are pruned; then they go too", async () => {
    const own = await freshBackend();
    const retained = await spawnBroker({
      ...own.env,
      ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      DELIVERED_RETENTION_SECONDS: "1",
      // Long enough that the direct message is pruned well before it, however
      // busy the machine (at 10 s a loaded run saw the channel message go first).
      HISTORY_RETENTION_SECONDS: "30",
      HOUSEKEEPING_INTERVAL_MS: "200",
    });
    const peers = new PeerPool();
    try {
      const { mesh, members } = await setupMesh(new AdminClient(retained.url, TEST_ADMIN_TOKEN), { members: ["sender", "reader"] });
      const [sender, reader] = members as [SetupMember, SetupMember];
      const s = await peers.connect(retained.wsUrl, sender, mesh.id);
      const r = await peers.connect(retained.wsUrl, reader, mesh.id, { autoAck: true });
      await r.request({ type: "join", channel: "#kept" });
      await s.request({ type: "join", channel: "#kept" });
      const channelAck = await s.send("#kept", { id: "channel-1" });
      const directAck = await s.send(reader.pubkey, { id: "direct-1" });
      await r.waitForPushes(2);
      // A retried id is recognised as long as its message is stored: the settled direct one goes first.
      const directAgain = await resendUntilNew(s, reader.pubkey, "direct-1");
      expect(directAgain.messageId).not.toBe(directAck.messageId);
      expect(await s.send("#kept", { id: "channel-1" })).toMatchObject({ duplicate: true, messageId: channelAck.messageId });
      expect(ids(await history(r, { target: "#kept" }))).toEqual([str(channelAck.messageId)]);
      // Past HISTORY_RETENTION_SECONDS the channel message leaves history and the table.
      const channelAgain = await resendUntilNew(s, "#kept", "channel-1");
      expect(ids(await history(r, { target: "#kept" }))).toEqual([str(channelAgain.messageId)]);
    } finally {
      await peers.closeAll();
      await retained.stop();
      await own.dispose();
    }
  });
});

describe("history bound", () => {
  test("with HISTORY_MAX_PER_CHANNEL, a channel's acknowledged messages beyond its newest N leave history once settled", async () => {
    const own = await freshBackend();
    const MAX = 3;
    const bounded = await spawnBroker({
      ...own.env,
      ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      HISTORY_MAX_PER_CHANNEL: String(MAX),
      // History is polled below until the prune has run.
      CONTROL_RATE_LIMIT_PER_MIN: "100000",
      DELIVERED_RETENTION_SECONDS: "1",
      HOUSEKEEPING_INTERVAL_MS: "200",
    });
    const peers = new PeerPool();
    try {
      const { mesh, members } = await setupMesh(new AdminClient(bounded.url, TEST_ADMIN_TOKEN), { members: ["sender", "reader"] });
      const [sender, reader] = members as [SetupMember, SetupMember];
      const s = await peers.connect(bounded.wsUrl, sender, mesh.id);
      const r = await peers.connect(bounded.wsUrl, reader, mesh.id, { autoAck: true });
      await r.request({ type: "join", channel: "#capped" });
      await s.request({ type: "join", channel: "#capped" });
      const sent = await sendTexts(s, "#capped", Array.from({ length: 8 }, (_, i) => `m${i}`));
      await r.waitForPushes(sent.length);
      const kept = await waitUntil(
        async () => {
          const page = ids(await history(r, { target: "#capped" }));
          return page.length <= MAX ? page : undefined;
        },
        60_000,
        `#capped to keep at most ${MAX} messages`,
      );
      expect(kept).toEqual(sent.slice(-MAX));
    } finally {
      await peers.closeAll();
      await bounded.stop();
      await own.dispose();
    }
  });
});

describe("history plan", () => {
  /** Every node of an EXPLAIN (FORMAT JSON) plan. */
  function nodes(plan: Record<string, unknown>): Array<Record<string, unknown>> {
    const children = (plan.Plans as Array<Record<string, unknown>> | undefined) ?? [];
    return [plan, ...children.flatMap(nodes)];
  }

  test("a page reads messages_channel_history_idx and never scans messages", async () => {
    const target = await freshBackend({ withSchema: true });
    const db: Database = await connect({ databaseUrl: target.databaseUrl, dataDir: target.dataDir ?? "" });
    try {
      await migrate(db);
      const [mesh] = await db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('plan', 'plan') RETURNING id::text`);
      const [member] = await db.rows<{ id: string }>(sql`
        INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${mesh!.id}::uuid, repeat('a', 64), 'm') RETURNING id::text`);
      // 40 channels and direct messages, 30 000 rows: enough that a scan would cost far more than the index.
      await db.rows(sql`
        INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
        SELECT ${mesh!.id}::uuid, ${member!.id}::uuid,
               CASE WHEN i % 5 = 0 THEN repeat('b', 64) ELSE '#c' || (i % 40) END,
               'next', 'plain', 'eA==', now() + interval '1 day'
        FROM generate_series(1, 30000) AS i`);
      await db.rows(sql`ANALYZE messages`);
      const [middle] = await db.rows<{ id: string }>(sql`
        SELECT id::text FROM messages WHERE target_spec = '#c7' ORDER BY seq OFFSET 300 LIMIT 1`);
      for (const before of [null, middle!.id]) {
        const query = historyQuery({ meshId: mesh!.id, channel: "#c7", before, limit: 50, maxBytes: HISTORY_PAGE_BYTES, retentionSeconds: 3600 });
        const [row] = await db.rows<{ "QUERY PLAN": unknown }>(sql`EXPLAIN (FORMAT JSON) ${query}`);
        const raw = row!["QUERY PLAN"];
        const plan = (typeof raw === "string" ? JSON.parse(raw) : raw) as Array<{ Plan: Record<string, unknown> }>;
        const all = nodes(plan[0]!.Plan);
        const onMessages = all.filter((n) => n["Relation Name"] === "messages");
        expect(onMessages.map((n) => n["Node Type"])).not.toContain("Seq Scan");
        expect(onMessages.some((n) => n["Index Name"] === "messages_channel_history_idx")).toBe(true);
      }
    } finally {
      await db.close();
      await target.dispose();
    }
  });
});
