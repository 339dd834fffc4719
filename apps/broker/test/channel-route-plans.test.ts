// The routes of sends to a channel, planned as their pools plan them on
// tables analyzed while one channel holds most members (a mesh's general
// channel, beside channels of a few). The statistics then say a channel has
// a thousand members, and the channel's members were merged with a walk of
// every member by id: a send to a channel of two read every member of every
// mesh. Each must read its own recipients.
import { beforeAll, expect, test } from "bun:test";
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { enqueueSends, type NewMessage } from "../src/store/queue/enqueue.ts";
import { routeSend } from "../src/store/routing.ts";
import { planOf, poolSettings, readPast } from "./support/plans.ts";
import { useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
const JOINED = 2000;
const FEW = 6;
let meshId = "";
const ids = { sender: "", other: "" };
let settings: Record<string, string> = {};
const pubkeyOf = (name: string) => Buffer.from(name).toString("hex").padEnd(64, "0");

beforeAll(async () => {
  const db = scratch.db;
  const [mesh] = await db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES ('channel-route', 'channel-route') RETURNING id`);
  meshId = mesh!.id;
  for (const name of ["sender", "other"] as const) {
    const [row] = await db.rows<{ id: string }>(sql`
      INSERT INTO members (mesh_id, pubkey, display_name) VALUES (${meshId}::uuid, ${pubkeyOf(name)}, ${name}) RETURNING id`);
    ids[name] = row!.id;
  }
  await db.rows(sql`
    WITH m AS (
      INSERT INTO members (mesh_id, pubkey, display_name)
      SELECT ${meshId}::uuid, md5(g::text) || md5(g::text), 'peer' FROM generate_series(1, ${JOINED}) g RETURNING id)
    INSERT INTO channel_members (mesh_id, channel, member_id) SELECT ${meshId}::uuid, '#general', id FROM m`);
  await db.rows(sql`
    INSERT INTO channel_members (mesh_id, channel, member_id)
    VALUES (${meshId}::uuid, '#pair', ${ids.sender}::uuid), (${meshId}::uuid, '#pair', ${ids.other}::uuid)`);
  await db.rows(sql`ANALYZE meshes, members, channel_members`);
  settings = await poolSettings(db);
});

const send = (): NewMessage => ({
  id: crypto.randomUUID(), meshId, senderId: ids.sender, clientId: null, targetSpec: "#pair", priority: "next",
  nonce: "n", ciphertext: "c", replyTo: null, ttlSeconds: 60, replyWaitSeconds: null,
});
const holders = { instanceId: "channel-route", unavailable: [], leaseSeconds: 30, notify: true };

const cases: Array<[string, (db: Executor) => Promise<unknown>]> = [
  ["a send to a channel of two", (db) => enqueueSends(db, [send()], holders)],
  ["the route of an ephemeral send to a channel of two", (db) => routeSend(db, { meshId, senderId: ids.sender, targetSpec: "#pair", priority: "next" })],
];

test.each(cases)("%s reads the channel's members, not every member", async (_, run) => {
  const plan = await planOf(scratch.backend.databaseUrl ?? scratch.db, run, { settings, analyze: true });
  expect(readPast(plan, ["members"], FEW)).toBeNull();
});
