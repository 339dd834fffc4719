// The send statement's notices to the other instances. They stay under
// Postgres's 8000-byte payload limit however many meshes one batch touches:
// past it the statement failed, and a multi-tenant burst was written a send
// at a time. And a delivery to a presence on another instance is written
// leased to it and named to that instance, while the notice stays small.
import { expect, test } from "bun:test";
import { waitUntil } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { BUS_CHANNEL, MAX_LEASED_ELSEWHERE, MAX_NOTIFIED_PUSHES } from "../src/store/notify.ts";
import { enqueueSends, type NewMessage } from "../src/store/queue/index.ts";
import { liveInstance, newMessage, useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
const one = async <T>(query: ReturnType<typeof sql>) => (await scratch.db.rows<T>(query))[0]!;
const holders = { instanceId: "enqueue-notify", unavailable: [], leaseSeconds: 30, notify: true };

/** The notices heard while `work` runs, as the other instances' listener reads them. */
async function heardDuring<T>(work: () => Promise<T>, until: (heard: string[]) => boolean): Promise<{ result: T; heard: string[] }> {
  const heard: string[] = [];
  const unlisten = await scratch.db.listen(BUS_CHANNEL, (payload) => heard.push(payload));
  try {
    const result = await work();
    await waitUntil(() => until(heard) || undefined, 5000, "the notices");
    return { result, heard };
  } finally {
    await unlisten();
  }
}

const member = (meshId: string, name: string) =>
  one<{ id: string; pubkey: string }>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${meshId}, ${crypto.randomUUID()}, ${name}) RETURNING id, pubkey`);

test("a batch of sends into 300 meshes, each to an offline member, is written in one statement; its notices name every mesh", async () => {
  const messages: NewMessage[] = [];
  for (let i = 0; i < 300; i++) {
    const slug = `m-${crypto.randomUUID()}`;
    const mesh = await one<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES (${slug}, ${slug}) RETURNING id`);
    const sender = await member(mesh.id, "sender");
    const recipient = await member(mesh.id, "recipient");
    messages.push(newMessage(mesh.id, sender.id, recipient.pubkey));
  }
  const meshes = (heard: string[]) => heard.flatMap((p) => (JSON.parse(p) as { meshes?: string[] }).meshes ?? []);
  const { result: written, heard } = await heardDuring(() => enqueueSends(scratch.db, messages, holders), (h) => meshes(h).length >= 300);
  expect(written.filter((w) => w.inserted)).toHaveLength(300);
  // Three notices of at most 100 meshes each.
  expect(written[0]!.notified).toBe(3);
  expect(new Set(meshes(heard))).toEqual(new Set(messages.map((m) => m.meshId)));
});

test(`deliveries to presences on another instance are written leased to them and named to it, ${MAX_NOTIFIED_PUSHES} to a notice, in order; none past ${MAX_LEASED_ELSEWHERE} a statement`, async () => {
  const mesh = await one<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('elsewhere', 'elsewhere') RETURNING id`);
  const sender = await member(mesh.id, "sender");
  // Members, each with a live presence on another instance (its session named by the member's key).
  await liveInstance(scratch.db, "another-instance");
  const recipients = await scratch.db.rows<{ id: string; pubkey: string; presence: string }>(sql`
    WITH m AS (
      INSERT INTO members (mesh_id, pubkey, display_name)
      SELECT ${mesh.id}::uuid, md5(random()::text) || g, 'r' || g FROM generate_series(1, ${5 + 250 + MAX_LEASED_ELSEWHERE + 1}) g
      RETURNING id, pubkey)
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    SELECT ${mesh.id}::uuid, m.id, 'another-instance', m.pubkey, 'r' FROM m
    RETURNING member_id::text AS id, session_id AS pubkey, id::text AS presence`);
  type Notice = { leased?: { instance: string; pushes: Array<[string, number]> }; members?: string[] };
  const parsed = (heard: string[]) => heard.map((p) => JSON.parse(p) as Notice);
  const send = (to: typeof recipients, notices: number) =>
    heardDuring(() => enqueueSends(scratch.db, to.map((r) => newMessage(mesh.id, sender.id, r.pubkey)), holders), (h) => h.length >= notices);
  const leasesOf = (to: typeof recipients) =>
    scratch.db.rows<{ id: number; holder: string; state: string; attempt: number }>(sql`
      SELECT id::float8 AS id, lease_presence_id::text AS holder, state, attempt FROM deliveries
      WHERE recipient_member_id = ANY (ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(to.map((r) => r.id))}::jsonb)::uuid))
      ORDER BY id`);

  const few = recipients.slice(0, 5);
  const { result: written, heard } = await send(few, 1);
  expect(written.map((w) => JSON.parse(w.leasedElsewhere))).toEqual(few.map((r) => [r.id]));
  expect(written.map((w) => w.leased)).toEqual(few.map(() => "[]"));
  const rows = await leasesOf(few);
  expect(rows.map((r) => [r.holder, r.state, r.attempt])).toEqual(few.map((r) => [r.presence, "leased", 1]));
  expect(parsed(heard)).toEqual([{ leased: { instance: "another-instance", pushes: rows.map((r) => [r.holder, r.id]) } }]);

  // More than a notice names: notices of 100, in the order of the deliveries.
  const more = recipients.slice(5, 255);
  const { heard: inParts } = await send(more, 3);
  const leased = await leasesOf(more);
  expect(leased.every((r) => r.state === "leased")).toBe(true);
  expect(parsed(inParts).map((n) => n.leased?.pushes.length)).toEqual([100, 100, 50]);
  expect(parsed(inParts).flatMap((n) => n.leased?.pushes ?? [])).toEqual(leased.map((r) => [r.holder, r.id]));

  // More deliveries than a statement may lease elsewhere: none is, all are queued and announced by member.
  const many = recipients.slice(255);
  const { result: queued, heard: announced } = await send(many, 1);
  expect(queued.every((w) => w.inserted && w.leasedElsewhere === "[]")).toBe(true);
  expect(parsed(announced).every((n) => n.leased === undefined)).toBe(true);
  expect((await leasesOf(many)).every((r) => r.state === "queued")).toBe(true);
});
