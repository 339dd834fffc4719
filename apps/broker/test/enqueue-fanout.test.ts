// A send to many recipients (`*`, a tag, a busy channel) is written by one
// statement whose work grows with its recipients, not with their square:
// each recipient's presence on the sending instance is looked up once. The
// statement's lookup of the presences was planned (under the pool's generic
// plan) into the join of its deliveries, and ran again for every recipient.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect, migrate, type Database } from "@switchboard/db";
import { backendKind, freshBackend, type TestBackend } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { enqueueSends, type NewMessage } from "../src/store/queue/index.ts";
import { planOf } from "./support/plans.ts";

const INSTANCE = "enqueue-fanout";
const MEMBERS = 200;

let backend: TestBackend;
let db: Database;
let meshId = "";
let senderId = "";

beforeAll(async () => {
  backend = await freshBackend();
  db = await connect({ databaseUrl: backend.databaseUrl, dataDir: backend.dataDir ?? "" });
  await migrate(db);
  const [mesh] = await db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('fanout', 'fanout') RETURNING id`);
  meshId = mesh!.id;
  const members = await db.rows<{ id: string }>(sql`
    INSERT INTO members (mesh_id, pubkey, display_name)
    SELECT ${meshId}::uuid, md5(g::text) || md5(g::text || 'k'), 'm' || g FROM generate_series(1, ${MEMBERS}) g
    RETURNING id`);
  senderId = members[0]!.id;
  // Every member has a live presence on this instance, idle: each delivery may be leased to it directly.
  await db.rows(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
    SELECT ${meshId}::uuid, id, ${INSTANCE}, 's', display_name FROM members WHERE mesh_id = ${meshId}::uuid`);
  await db.rows(sql`ANALYZE`);
});
afterAll(async () => {
  await db?.close();
  await backend?.dispose();
});

const broadcast = (): NewMessage => ({
  id: crypto.randomUUID(),
  meshId,
  senderId,
  clientId: null,
  targetSpec: "*",
  priority: "next",
  nonce: "plain",
  ciphertext: "",
  replyTo: null,
  ttlSeconds: 3600,
  replyWaitSeconds: null,
});
const holders = { instanceId: INSTANCE, unavailable: [], leaseSeconds: 30, notify: false };

test("a broadcast is written with a delivery leased to each other member's presence", async () => {
  const [written] = await enqueueSends(db, [broadcast()], holders);
  expect(JSON.parse(written!.recipients)).toHaveLength(MEMBERS - 1);
  expect(JSON.parse(written!.leased)).toHaveLength(MEMBERS - 1);
});

test.skipIf(backendKind !== "postgres")("a broadcast's statement looks each recipient's presence up once (generic plan, run)", async () => {
  const plan = await planOf(backend.databaseUrl!, (recorder) => enqueueSends(recorder, [broadcast()], holders), {
    generic: true,
    analyze: true,
  });
  const presenceLookups = [...plan.matchAll(/on presences p .*loops=(\d+)/g)].map((m) => Number(m[1]));
  expect(presenceLookups.length).toBeGreaterThan(0);
  // Once per recipient; before, once per recipient for every recipient (199 × 199).
  expect(Math.max(...presenceLookups)).toBeLessThanOrEqual(MEMBERS);
});
