// The direct send statement (store/queue/enqueue-direct.ts) writes what the
// send statement writes for a batch of sends each to one member by pubkey,
// but for a delivery a presence on another instance would take: that one it
// writes queued and names in its notice. The same batch goes through each
// statement, into a mesh of its own: a recipient connected here and idle,
// one offline, one connected only elsewhere, one here but backed up, one
// busy (a `next` and a `now` to it), one with older queued work, an unknown
// pubkey, a revoked sender and a revoked recipient, a request its sender
// waits on, one backed up here but idle elsewhere, one with a webhook, a
// send to oneself and one client id twice; then a retry and the reply to
// that request. Each statement's answers and rows are checked, and the two
// are compared row by row, their members' ids read as names.
import { beforeAll, describe, expect, test } from "bun:test";
import { waitUntil } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { MAX_SENDS_PER_COMMIT } from "../src/services/send-commits.ts";
import { BUS_CHANNEL, MAX_LEASED_ELSEWHERE, MAX_NOTIFIED_MEMBERS } from "../src/store/notify.ts";
import { MAX_DIRECT_BATCH } from "../src/store/queue/enqueue-direct.ts";
import { enqueueSends, writtenDirectly, type EnqueuedSend, type LocalHolders, type NewMessage } from "../src/store/queue/index.ts";
import { liveInstance, newMessage, useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
const INSTANCE = "enqueue-direct";
const ELSEWHERE = "enqueue-direct-next";
const pubkey = () => crypto.randomUUID().replaceAll("-", "").repeat(2);
const one = async <T>(query: ReturnType<typeof sql>) => (await scratch.db.rows<T>(query))[0]!;

interface Member {
  id: string;
  pubkey: string;
}

async function member(meshId: string, name: string, presence?: { instance: string; status: string }): Promise<Member & { presence: string }> {
  const m = await one<Member>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${meshId}::uuid, ${pubkey()}, ${name}) RETURNING id, pubkey`);
  if (!presence) return { ...m, presence: "" };
  const p = await one<{ id: string }>(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name, status)
    VALUES (${meshId}::uuid, ${m.id}::uuid, ${presence.instance}, ${crypto.randomUUID()}, ${name}, ${presence.status}) RETURNING id`);
  return { ...m, presence: p.id };
}

/** The batch's answers and its delivery rows (by send), with the notices heard. */
async function write(messages: NewMessage[], holders: LocalHolders, notices: number) {
  const heard: string[] = [];
  const unlisten = await scratch.db.listen(BUS_CHANNEL, (payload) => heard.push(payload));
  try {
    const written = await enqueueSends(scratch.db, messages, holders);
    await waitUntil(() => heard.length >= notices || undefined, 5000, "the notices");
    const rows = await scratch.db.rows<{ messageId: string; state: string; holder: string | null; attempt: number }>(sql`
      SELECT message_id AS "messageId", state, lease_presence_id AS holder, attempt FROM deliveries
      WHERE message_id IN (SELECT jsonb_array_elements_text(${JSON.stringify(messages.map((m) => m.id))}::jsonb)::uuid)`);
    const delivery = (i: number) => rows.filter((r) => r.messageId === messages[i]!.id).map(({ state, holder, attempt }) => ({ state, holder, attempt }));
    return { written, delivery, heard: heard.map((p) => JSON.parse(p) as Record<string, unknown>) };
  } finally {
    await unlisten();
  }
}

const leasedList = (w: EnqueuedSend) => JSON.parse(w.leased) as Array<{ memberId: string; presenceId: string }>;

/** Each statement's first batch, its ids read as the names of its members, presences and messages. */
const summaries = new Map<boolean, unknown[]>();
/** The sends only the send statement leases elsewhere. */
const LEASED_ELSEWHERE_BY_SEND_STATEMENT = [2, 11];

describe.each([
  ["the send statement", false],
  ["the direct statement", true],
] as const)("a batch of direct sends written by %s", (_name, recipientsHere) => {
  const holders = (unavailable: string[] = []): LocalHolders => ({ instanceId: INSTANCE, unavailable, leaseSeconds: 30, notify: true, recipientsHere });
  let meshId = "";
  const m: Record<string, Member & { presence: string }> = {};
  let first: Awaited<ReturnType<typeof write>>;
  let batch: NewMessage[] = [];

  beforeAll(async () => {
    const slug = `direct-${crypto.randomUUID()}`;
    meshId = (await one<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES (${slug}, ${slug}) RETURNING id`)).id;
    m.sender = await member(meshId, "sender");
    await liveInstance(scratch.db, ELSEWHERE);
    m.here = await member(meshId, "here", { instance: INSTANCE, status: "idle" });
    m.offline = await member(meshId, "offline");
    m.elsewhere = await member(meshId, "elsewhere", { instance: ELSEWHERE, status: "idle" });
    m.backedUp = await member(meshId, "backed-up", { instance: INSTANCE, status: "idle" });
    m.busy = await member(meshId, "busy", { instance: INSTANCE, status: "working" });
    m.behind = await member(meshId, "behind", { instance: INSTANCE, status: "idle" });
    m.revoked = await member(meshId, "revoked");
    await scratch.db.rows(sql`UPDATE members SET revoked_at = now() WHERE id = ${m.revoked.id}::uuid`);
    // Backed up here, idle on the next instance.
    m.split = await member(meshId, "split", { instance: INSTANCE, status: "idle" });
    const splitElsewhere = await one<{ id: string }>(sql`
      INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
      VALUES (${meshId}::uuid, ${m.split.id}::uuid, ${ELSEWHERE}, 'split-next', 'split') RETURNING id`);
    m.hooked = await member(meshId, "hooked", { instance: INSTANCE, status: "idle" });
    await scratch.db.rows(sql`INSERT INTO webhooks (member_id, url, secret) VALUES (${m.hooked.id}::uuid, 'https://example.invalid/hook', 's')`);
    // Older work queued for `behind`: a new send must not overtake it.
    await enqueueSends(scratch.db, [newMessage(meshId, m.sender.id, m.behind.pubkey)], { ...holders([m.behind.presence]), notify: false });

    const send = (from: Member, to: string, extra: Partial<NewMessage> = {}) => ({ ...newMessage(meshId, from.id, to), ...extra });
    batch = [
      send(m.sender!, m.here!.pubkey, { clientId: "retried" }),
      send(m.sender!, m.offline!.pubkey),
      send(m.sender!, m.elsewhere!.pubkey),
      send(m.sender!, m.backedUp!.pubkey),
      send(m.sender!, m.busy!.pubkey),
      send(m.sender!, m.busy!.pubkey, { priority: "now" }),
      send(m.sender!, m.behind!.pubkey),
      send(m.sender!, pubkey()),
      send(m.revoked!, m.here!.pubkey),
      // A request whose sender waits for the reply.
      send(m.here!, m.offline!.pubkey, { replyWaitSeconds: 60 }),
      send(m.sender!, m.revoked!.pubkey),
      send(m.sender!, m.split!.pubkey),
      send(m.sender!, m.hooked!.pubkey),
      send(m.here!, m.here!.pubkey),
      send(m.sender!, m.offline!.pubkey, { clientId: "twin" }),
      send(m.sender!, m.offline!.pubkey, { clientId: "twin" }),
    ];
    expect(writtenDirectly(batch, holders())).toBe(recipientsHere);
    first = await write(batch, holders([m.backedUp.presence, m.split.presence]), recipientsHere ? 1 : 2);

    const names = new Map<string, string>([[splitElsewhere.id, "split's presence elsewhere"]]);
    for (const [name, x] of Object.entries(m)) names.set(x.id, name).set(x.presence, `${name}'s presence`);
    for (const [i, sent] of batch.entries()) names.set(sent.id, `send ${i}`);
    const named = (id: string | null) => (id === null ? null : (names.get(id) ?? id));
    summaries.set(
      recipientsHere,
      first.written.map((w, i) => ({
        idx: w.idx,
        known: w.known,
        senderLive: w.senderLive,
        inserted: w.inserted,
        prior: named(w.priorId),
        priorRecipients: w.priorRecipients,
        recipients: (JSON.parse(w.recipients) as string[]).map(named),
        leased: leasedList(w).map((l) => [named(l.memberId), named(l.presenceId)]),
        leasedElsewhere: (JSON.parse(w.leasedElsewhere) as string[]).map(named),
        deliveries: first.delivery(i).map((d) => ({ ...d, holder: named(d.holder) })),
      })),
    );
  });

  test("a recipient idle here gets its delivery leased to its presence, to push at once", () => {
    expect(first.written[0]).toMatchObject({ known: true, senderLive: true, inserted: true, notified: recipientsHere ? 1 : 2 });
    expect(leasedList(first.written[0]!)).toEqual([expect.objectContaining({ memberId: m.here!.id, presenceId: m.here!.presence })]);
    expect(first.delivery(0)).toEqual([{ state: "leased", holder: m.here!.presence, attempt: 1 }]);
  });

  test("one offline, one backed up here, one busy with a `next`, one with older work, one with a webhook: queued, and named in the notice", () => {
    for (const i of [1, 3, 4, 6, 12]) {
      expect(first.written[i]).toMatchObject({ known: true, inserted: true, leased: "[]", leasedElsewhere: "[]" });
      expect(first.delivery(i)).toEqual([{ state: "queued", holder: null, attempt: 0 }]);
    }
    const named = first.heard.flatMap((n) => (n.members as string[] | undefined) ?? []);
    const queued = [m.offline!.id, m.backedUp!.id, m.busy!.id, m.behind!.id, m.hooked!.id];
    expect(named.sort()).toEqual((recipientsHere ? [...queued, m.elsewhere!.id, m.split!.id] : queued).sort());
  });

  test("a send to oneself is leased to one's own presence; a client id twice in one batch is written once", () => {
    expect(first.delivery(13)).toEqual([{ state: "leased", holder: m.here!.presence, attempt: 1 }]);
    expect(first.written[14]).toMatchObject({ inserted: true, recipients: JSON.stringify([m.offline!.id]) });
    expect(first.written[15]).toMatchObject({ known: true, senderLive: true, inserted: false, priorId: null, recipients: JSON.stringify([m.offline!.id]) });
    expect(first.delivery(15)).toEqual([]);
  });

  test("a busy recipient's `now` is leased to it", () => {
    expect(first.delivery(5)).toEqual([{ state: "leased", holder: m.busy!.presence, attempt: 1 }]);
  });

  test("a recipient connected only elsewhere, or backed up here and idle elsewhere: leased there by the send statement, queued by the direct one", async () => {
    const [split] = await scratch.db.rows<{ id: string }>(sql`
      SELECT id FROM presences WHERE member_id = ${m.split!.id}::uuid AND instance_id = ${ELSEWHERE}`);
    for (const [i, recipient, presence] of [[2, m.elsewhere!.id, m.elsewhere!.presence], [11, m.split!.id, split!.id]] as const) {
      if (recipientsHere) {
        expect(first.written[i]).toMatchObject({ inserted: true, leased: "[]", leasedElsewhere: "[]" });
        expect(first.delivery(i)).toEqual([{ state: "queued", holder: null, attempt: 0 }]);
        continue;
      }
      expect(JSON.parse(first.written[i]!.leasedElsewhere)).toEqual([recipient]);
      expect(first.delivery(i)).toEqual([{ state: "leased", holder: presence, attempt: 1 }]);
    }
    const notice = first.heard.find((n) => n.leased) as { leased: { instance: string; pushes: Array<[string, number]> } } | undefined;
    if (recipientsHere) expect(notice).toBeUndefined();
    else expect(notice?.leased.pushes.map(([presence]) => presence).sort()).toEqual([m.elsewhere!.presence, split!.id].sort());
  });

  test("an unknown pubkey, a revoked recipient and a revoked sender write nothing", () => {
    expect(first.written[7]).toMatchObject({ known: false, inserted: false, recipients: "[]" });
    expect(first.written[10]).toMatchObject({ known: false, inserted: false, recipients: "[]" });
    expect(first.delivery(10)).toEqual([]);
    expect(first.written[8]).toMatchObject({ known: true, senderLive: false, inserted: false });
    expect(first.delivery(7)).toEqual([]);
    expect(first.delivery(8)).toEqual([]);
    expect(first.written.map((w) => w.idx)).toEqual(batch.map((_, i) => i));
    expect(JSON.parse(first.written[1]!.recipients)).toEqual([m.offline!.id]);
  });

  test("a retried client id reports the stored message; the reply to a waiting request is held for it", async () => {
    const retry = { ...batch[0]!, id: crypto.randomUUID() };
    const reply = { ...newMessage(meshId, m.offline!.id, m.here!.pubkey), replyTo: batch[9]!.id };
    const second = await write([retry, reply], holders(), 1);
    expect(second.written[0]).toMatchObject({ inserted: false, priorId: batch[0]!.id, priorRecipients: 1 });
    expect(second.written[1]).toMatchObject({ inserted: true, leased: "[]", notified: 1 });
    expect(second.delivery(1)).toEqual([{ state: "leased", holder: batch[9]!.id, attempt: 0 }]);
    expect(second.heard).toEqual([{ members: [m.here!.id] }]);
  });

  test("a batch with nothing queued and nothing leased elsewhere sends no notice", async () => {
    const { written } = await write([newMessage(meshId, m.sender!.id, m.here!.pubkey)], holders(), 0);
    expect(written[0]).toMatchObject({ inserted: true, notified: 0 });
    expect(leasedList(written[0]!)).toEqual([expect.objectContaining({ memberId: m.here!.id, presenceId: m.here!.presence })]);
  });
});

test("the two statements' answers and rows agree, but for the sends the send statement leases elsewhere", () => {
  const [send, direct] = [summaries.get(false), summaries.get(true)];
  expect(send).toHaveLength(16);
  const others = (rows: unknown[] | undefined) => rows?.filter((_, i) => !LEASED_ELSEWHERE_BY_SEND_STATEMENT.includes(i));
  expect(others(direct)).toEqual(others(send));
  for (const i of LEASED_ELSEWHERE_BY_SEND_STATEMENT) {
    expect(direct![i]).toMatchObject({ ...(send![i] as object), leasedElsewhere: [], deliveries: [{ state: "queued", holder: null, attempt: 0 }] });
  }
});

test(`only a batch of sends each to a pubkey, at most ${MAX_DIRECT_BATCH}, the instance says it holds, is written directly`, () => {
  // The direct statement may pick a presence elsewhere whenever it notifies:
  // the send statement too, while its recipients number at most this.
  expect(MAX_DIRECT_BATCH).toBeLessThanOrEqual(MAX_LEASED_ELSEWHERE);
  // The largest batch a broker writes fits.
  expect(MAX_DIRECT_BATCH).toBeGreaterThanOrEqual(MAX_SENDS_PER_COMMIT);
  const send = (targetSpec: string) => newMessage(crypto.randomUUID(), crypto.randomUUID(), targetSpec);
  const holders = (recipientsHere?: boolean): LocalHolders => ({ instanceId: INSTANCE, unavailable: [], leaseSeconds: 30, notify: true, recipientsHere });
  const direct = Array.from({ length: MAX_DIRECT_BATCH }, () => send(pubkey()));
  expect(writtenDirectly(direct, holders(true))).toBe(true);
  expect(writtenDirectly(direct, holders(false))).toBe(false);
  expect(writtenDirectly(direct, holders())).toBe(false);
  expect(writtenDirectly([...direct, send(pubkey())], holders(true))).toBe(false);
  for (const target of ["*", "#room", "tag:ops"]) expect(writtenDirectly([send(pubkey()), send(target)], holders(true))).toBe(false);
});

test(`a direct batch queued for more than ${MAX_NOTIFIED_MEMBERS} members names each of them, ${MAX_NOTIFIED_MEMBERS} to a notice`, async () => {
  const slug = `direct-many-${crypto.randomUUID()}`;
  const meshId = (await one<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES (${slug}, ${slug}) RETURNING id`)).id;
  const sender = await member(meshId, "sender");
  const count = 2 * MAX_NOTIFIED_MEMBERS + 10;
  const recipients = await scratch.db.rows<Member>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name)
    SELECT ${meshId}::uuid, md5(random()::text) || md5(g::text), 'offline ' || g FROM generate_series(1, ${count}) g
    RETURNING id, pubkey`);
  const batch = recipients.map((r) => newMessage(meshId, sender.id, r.pubkey));
  const holders: LocalHolders = { instanceId: INSTANCE, unavailable: [], leaseSeconds: 30, notify: true, recipientsHere: true };
  expect(writtenDirectly(batch, holders)).toBe(true);

  const { written, delivery, heard } = await write(batch, holders, 3);
  expect(written.every((w) => w.inserted && w.notified === 3)).toBe(true);
  expect(batch.map((_, i) => delivery(i))).toEqual(batch.map(() => [{ state: "queued", holder: null, attempt: 0 }]));
  const lists = heard.map((n) => n.members as string[]);
  expect(lists.map((l) => l.length).sort((a, b) => b - a)).toEqual([MAX_NOTIFIED_MEMBERS, MAX_NOTIFIED_MEMBERS, 10]);
  expect(lists.flat().sort()).toEqual(recipients.map((r) => r.id).sort());
});
