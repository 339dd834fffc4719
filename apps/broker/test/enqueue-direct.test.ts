// The direct send statement (store/queue/enqueue-direct.ts) writes what the
// send statement writes for a batch of sends each to one member by pubkey,
// but for a delivery a presence on another instance would take: that one it
// writes queued and names in its notice. The same batch goes through each
// statement, into a mesh of its own: a recipient connected here and idle,
// one offline, one connected only elsewhere, one here but backed up, one
// busy (a `next` and a `now` to it), one with older queued work, an unknown
// pubkey, a revoked sender, a request its sender waits on, then a retry and
// the reply to that request.
import { beforeAll, describe, expect, test } from "bun:test";
import { waitUntil } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { BUS_CHANNEL } from "../src/store/notify.ts";
import { enqueueSends, writtenDirectly, type EnqueuedSend, type LocalHolders, type NewMessage } from "../src/store/queue/index.ts";
import { newMessage, useBackendDatabase } from "./support/scratch-db.ts";

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
    m.here = await member(meshId, "here", { instance: INSTANCE, status: "idle" });
    m.offline = await member(meshId, "offline");
    m.elsewhere = await member(meshId, "elsewhere", { instance: ELSEWHERE, status: "idle" });
    m.backedUp = await member(meshId, "backed-up", { instance: INSTANCE, status: "idle" });
    m.busy = await member(meshId, "busy", { instance: INSTANCE, status: "working" });
    m.behind = await member(meshId, "behind", { instance: INSTANCE, status: "idle" });
    m.revoked = await member(meshId, "revoked");
    await scratch.db.rows(sql`UPDATE members SET revoked_at = now() WHERE id = ${m.revoked.id}::uuid`);
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
    ];
    expect(writtenDirectly(batch, holders())).toBe(recipientsHere);
    first = await write(batch, holders([m.backedUp.presence]), recipientsHere ? 1 : 2);
  });

  test("a recipient idle here gets its delivery leased to its presence, to push at once", () => {
    expect(first.written[0]).toMatchObject({ known: true, senderLive: true, inserted: true, notified: recipientsHere ? 1 : 2 });
    expect(leasedList(first.written[0]!)).toEqual([expect.objectContaining({ memberId: m.here!.id, presenceId: m.here!.presence })]);
    expect(first.delivery(0)).toEqual([{ state: "leased", holder: m.here!.presence, attempt: 1 }]);
  });

  test("one offline, one backed up here, one busy with a `next`, one with older work: queued, and named in the notice", () => {
    for (const i of [1, 3, 4, 6]) {
      expect(first.written[i]).toMatchObject({ inserted: true, leased: "[]", leasedElsewhere: "[]" });
      expect(first.delivery(i)).toEqual([{ state: "queued", holder: null, attempt: 0 }]);
    }
    const named = first.heard.flatMap((n) => (n.members as string[] | undefined) ?? []);
    const queued = [m.offline!.id, m.backedUp!.id, m.busy!.id, m.behind!.id];
    expect(new Set(named)).toEqual(new Set(recipientsHere ? [...queued, m.elsewhere!.id] : queued));
  });

  test("a busy recipient's `now` is leased to it", () => {
    expect(first.delivery(5)).toEqual([{ state: "leased", holder: m.busy!.presence, attempt: 1 }]);
  });

  test("a recipient connected only elsewhere: leased there by the send statement, queued by the direct one", () => {
    const elsewhere = m.elsewhere!;
    if (recipientsHere) {
      expect(first.written[2]).toMatchObject({ inserted: true, leased: "[]", leasedElsewhere: "[]" });
      expect(first.delivery(2)).toEqual([{ state: "queued", holder: null, attempt: 0 }]);
      return;
    }
    expect(JSON.parse(first.written[2]!.leasedElsewhere)).toEqual([elsewhere.id]);
    expect(first.delivery(2)).toEqual([{ state: "leased", holder: elsewhere.presence, attempt: 1 }]);
    expect(first.heard.find((n) => n.leased)).toMatchObject({ leased: { instance: ELSEWHERE } });
  });

  test("an unknown pubkey and a revoked sender write nothing", () => {
    expect(first.written[7]).toMatchObject({ known: false, inserted: false, recipients: "[]" });
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
});

test("only a batch of sends each to a pubkey, at most 128, the instance says it holds, is written directly", () => {
  const send = (targetSpec: string) => newMessage(crypto.randomUUID(), crypto.randomUUID(), targetSpec);
  const holders = (recipientsHere?: boolean): LocalHolders => ({ instanceId: INSTANCE, unavailable: [], leaseSeconds: 30, notify: true, recipientsHere });
  const direct = Array.from({ length: 128 }, () => send(pubkey()));
  expect(writtenDirectly(direct, holders(true))).toBe(true);
  expect(writtenDirectly(direct, holders(false))).toBe(false);
  expect(writtenDirectly(direct, holders())).toBe(false);
  expect(writtenDirectly([...direct, send(pubkey())], holders(true))).toBe(false);
  for (const target of ["*", "#room", "tag:ops"]) expect(writtenDirectly([send(pubkey()), send(target)], holders(true))).toBe(false);
});
