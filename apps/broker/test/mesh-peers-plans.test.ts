// The reads of a mesh's live peers, planned as their pools plan them on
// tables analyzed while one mesh holds most members and presences (one
// organisation's mesh beside small ones, one of them running a scheduled
// job whose every run was a presence, ended since, kept until the prune). The statistics then say a mesh has
// thousands of live presences, and their members were merged with a walk of
// every member by id: a look at a mesh of two read every member of every
// mesh. Each must read the mesh's own rows.
import { beforeAll, expect, test } from "bun:test";
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { listLivePeers } from "../src/store/directory.ts";
import { livePeersOfMesh } from "../src/store/presences.ts";
import { planOf, poolSettings, readPast } from "./support/plans.ts";
import { useBackendDatabase } from "./support/scratch-db.ts";

const scratch = useBackendDatabase();
const BIG_MESH = 3000;
const RUNS = 3000;
const FEW = 6;
const meshes = { big: "", small: "" };
let settings: Record<string, string> = {};

beforeAll(async () => {
  const db = scratch.db;
  for (const mesh of ["big", "small"] as const) {
    const [row] = await db.rows<{ id: string }>(sql`INSERT INTO meshes (slug, name) VALUES (${`peers-${mesh}`}, ${mesh}) RETURNING id`);
    meshes[mesh] = row!.id;
  }
  for (const [mesh, count] of [[meshes.big, BIG_MESH], [meshes.small, 2]] as const) {
    await db.rows(sql`
      WITH m AS (
        INSERT INTO members (mesh_id, pubkey, display_name)
        SELECT ${mesh}::uuid, md5(${mesh} || g) || md5(g::text), 'peer' FROM generate_series(1, ${count}) g RETURNING id)
      INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name)
      SELECT ${mesh}::uuid, id, 'mesh-peers', 's', 'peer' FROM m`);
  }
  await db.rows(sql`
    INSERT INTO presences (mesh_id, member_id, instance_id, session_id, display_name, disconnected_at)
    SELECT ${meshes.small}::uuid, (SELECT id FROM members WHERE mesh_id = ${meshes.small}::uuid LIMIT 1), 'mesh-peers', 'job', 'job', now()
    FROM generate_series(1, ${RUNS})`);
  await db.rows(sql`ANALYZE meshes, members, presences`);
  settings = await poolSettings(db);
});

const cases: Array<[string, (db: Executor) => Promise<unknown>]> = [
  ["the live peers of a mesh", (db) => livePeersOfMesh(db, meshes.small)],
  // Also a presence subscriber's snapshot (livePresenceRows).
  ["a mesh's live presences listed", (db) => listLivePeers(db, meshes.small)],
];

test.each(cases)("%s reads the mesh's members, not every member", async (_, run) => {
  const plan = await planOf(scratch.backend.databaseUrl ?? scratch.db, run, { settings, analyze: true });
  expect(readPast(plan, ["members", "presences"], FEW)).toBeNull();
});
