// Claims for socket presences (store/queue/claim.ts claimForPresences),
// against a real database: each member's queued deliveries are leased, in
// queue order, to one of the presences the caller named (an idle one first),
// up to its room. On Postgres, with many live presences on the instance, a
// claim reads only the presences it names: the per-member list was assumed to
// hold a hundred, and every live presence was read for every member. A busy
// presence's claim reads its member's urgent deliveries through their own
// index: through the queue's, it walked every held message at every claim.
import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { claimForPresences, type ClaimRequest } from "../src/store/queue/claim.ts";
import { planOf, rowsReadFrom } from "./support/plans.ts";
import { useMeshDatabase } from "./support/scratch-db.ts";

const INSTANCE = "claim";
const t = useMeshDatabase("claim");

async function member(name: string): Promise<string> {
  const [m] = await t.db.rows<{ id: string }>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${t.meshId}::uuid, ${crypto.randomUUID()}, ${name}) RETURNING id`);
  return m!.id;
}

async function presence(memberId: string, session: string, status = "idle"): Promise<string> {
  const [p] = await t.db.rows<{ id: string }>(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name, status)
    VALUES (${t.meshId}::uuid, ${memberId}::uuid, ${INSTANCE}, ${session}, 'n', ${status}) RETURNING id`);
  return p!.id;
}

/** `count` queued deliveries to `recipient`, from itself; their message ids in queue order. */
async function queue(recipient: string, count: number, priority = "next"): Promise<string[]> {
  const rows = await t.db.rows<{ id: string }>(sql`
    WITH m AS (
      INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
      SELECT ${t.meshId}::uuid, ${recipient}::uuid, 'k', ${priority}, 'n', 'c', now() + interval '1 day' FROM generate_series(1, ${count})
      RETURNING id)
    INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
    SELECT id, ${recipient}::uuid, ${priority}, now() + interval '1 day' FROM m ORDER BY id RETURNING message_id AS id`);
  return rows.map((r) => r.id);
}

describe("claimForPresences", () => {
  test("leases a member's oldest queued deliveries to its idle presence, up to that presence's room", async () => {
    const ada = await member("ada");
    const busy = await presence(ada, "busy", "working");
    const idle = await presence(ada, "idle");
    const queued = await queue(ada, 5);
    const leased = await claimForPresences(
      t.db,
      [{ memberId: ada, presences: [{ id: busy, room: 10 }, { id: idle, room: 3 }] }],
      30,
    );
    expect(leased.map((d) => d.messageId)).toEqual(queued.slice(0, 3));
    expect(new Set(leased.map((d) => d.presenceId))).toEqual(new Set([idle]));
  });

  test("a busy presence is leased its member's urgent deliveries alone, in queue order, past the held ones", async () => {
    const bea = await member("bea");
    const busy = await presence(bea, "busy", "working");
    await queue(bea, 3);
    const first = await queue(bea, 2, "now");
    await queue(bea, 3, "low");
    const second = await queue(bea, 1, "now");
    const leased = await claimForPresences(t.db, [{ memberId: bea, presences: [{ id: busy, room: 10 }] }], 30);
    expect(leased.map((d) => d.messageId)).toEqual([...first, ...second]);
    expect(leased.every((d) => d.presenceId === busy && d.priority === "now")).toBe(true);
  });

  test("a busy presence's claim reads its urgent deliveries, not the held ones around them (run)", async () => {
    const cy = await member("cy");
    const busy = await presence(cy, "busy", "working");
    await queue(cy, 1000);
    await queue(cy, 2, "now");
    await t.db.rows(sql`ANALYZE`);
    const plan = await planOf(t.backend.databaseUrl ?? t.db, (recorder) => claimForPresences(recorder, [{ memberId: cy, presences: [{ id: busy, room: 10 }] }], 30), {
      generic: true,
      analyze: true,
    });
    expect(plan).toMatch(/rows=2(?:\.00)? loops=1/);
    // The reads of the queue (the update's own lookup of the two aside).
    // Before: the thousand held ones too, at every claim.
    expect(rowsReadFrom(plan, "deliveries queued")).toBe(2);
  });

  test("reads only the presences it is given, however many live on the instance (run)", async () => {
    const requests: ClaimRequest[] = [];
    for (let i = 0; i < 10; i++) {
      const id = await member(`m${i}`);
      requests.push({ memberId: id, presences: [{ id: await presence(id, "s"), room: 5 }] });
      await queue(id, 2);
    }
    const others = await member("others");
    for (let i = 0; i < 300; i++) await presence(others, `o${i}`);
    await t.db.rows(sql`ANALYZE`);
    const plan = await planOf(t.backend.databaseUrl ?? t.db, (recorder) => claimForPresences(recorder, requests, 30), { generic: true, analyze: true });
    expect(rowsReadFrom(plan, "presences")).toBeLessThanOrEqual(requests.length);
  });
});
