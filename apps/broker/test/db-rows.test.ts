// Rows come back in the same shapes from both backends: the store's code is
// written once for postgres.js and PGlite. Dates, times and intervals stay the
// text Postgres prints (the embedded driver installs its parsers once on the
// client rather than passing them with every query).
import { connect, errorCode, PLANNER_SETTINGS, type Database } from "@switchboard/db";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { backendKind, freshBackend, type TestBackend } from "@switchboard/testkit";
import { sql } from "drizzle-orm";

let backend: TestBackend;
let db: Database;

beforeAll(async () => {
  backend = await freshBackend();
  db = await connect({ databaseUrl: backend.databaseUrl, dataDir: backend.dataDir ?? "" });
});

afterAll(async () => {
  await db?.close();
  await backend?.dispose();
});

const SHAPES = sql`SELECT
  timestamptz '2026-01-02 03:04:05.678+00' AS at, timestamp '2026-01-02 03:04:05' AS local, date '2026-01-02' AS day,
  interval '90 seconds' AS span, 7::int4 AS small, 1.50::numeric AS exact, 2.5::float8 AS float,
  ARRAY['a', 'b']::text[] AS names, ARRAY[timestamptz '2026-01-02 03:04:05+00'] AS stamps, ARRAY[1.5]::numeric[] AS amounts, '00000000-0000-0000-0000-000000000001'::uuid AS id, '{"a": 1}'::jsonb AS doc, true AS yes`;

const EXPECTED = {
  at: "2026-01-02 03:04:05.678+00",
  local: "2026-01-02 03:04:05",
  day: "2026-01-02",
  span: "00:01:30",
  small: 7,
  exact: "1.50",
  float: 2.5,
  names: ["a", "b"],
  // Arrays of those types stay Postgres's array text, as postgres.js returns them.
  stamps: '{"2026-01-02 03:04:05+00"}',
  amounts: "{1.5}",
  id: "00000000-0000-0000-0000-000000000001",
  doc: { a: 1 },
  yes: true,
};

test(`${process.env.DATABASE_URL ? "postgres.js" : "PGlite"} returns the shapes the store is written for`, async () => {
  expect(await db.rows(SHAPES)).toEqual([EXPECTED]);
});

test("the same shapes inside a transaction, and a failed transaction leaves nothing", async () => {
  expect(await db.transaction((tx) => tx.rows(SHAPES))).toEqual([EXPECTED]);
  await db.rows(sql`CREATE TABLE shapes_probe (n int)`);
  const failed = await db
    .transaction(async (tx) => {
      await tx.rows(sql`INSERT INTO shapes_probe VALUES (1)`);
      await tx.rows(sql`SELECT 1 / 0`);
    })
    .then(() => undefined, (error: unknown) => error);
  // The broker reads a failure's SQLSTATE where either driver puts it.
  expect(errorCode(failed)).toBe("22012");
  expect(await db.rows(sql`SELECT count(*)::int AS n FROM shapes_probe`)).toEqual([{ n: 0 }]);
});

// The embedded database keeps PGlite's start parameters and takes 32 MB of
// shared buffers rather than Postgres's 128 MB, which PGlite fills as it starts.
test.skipIf(backendKind !== "embedded")("the embedded database starts with 32 MB of shared buffers and PGlite's own settings", async () => {
  const settings = await db.rows<{ name: string; setting: string; unit: string | null }>(
    sql`SELECT name, setting, unit FROM pg_settings WHERE name IN ('shared_buffers', 'max_worker_processes', 'search_path') ORDER BY name`,
  );
  expect(settings).toEqual([
    { name: "max_worker_processes", setting: "0", unit: null },
    { name: "search_path", setting: "public", unit: null },
    { name: "shared_buffers", setting: "4096", unit: "8kB" },
  ]);
});

test("values bound to a statement come back as the same types from both drivers", async () => {
  const bound = sql`SELECT ${"a"}::text AS label, ${7}::int AS n, ${true}::boolean AS yes, ${null}::text AS none,
    ${"00000000-0000-0000-0000-000000000002"}::uuid AS id, ${JSON.stringify({ b: [1] })}::text::jsonb AS doc,
    ${JSON.stringify(["00000000-0000-0000-0000-000000000003"])}::text::jsonb ->> 0 AS first`;
  const expected = { label: "a", n: 7, yes: true, none: null, id: "00000000-0000-0000-0000-000000000002", doc: { b: [1] }, first: "00000000-0000-0000-0000-000000000003" };
  expect(await db.rows(bound)).toEqual([expected]);
  expect(await db.rows(bound)).toEqual([expected]);
});

// The embedded database plans as the pools do: each statement prepared once
// (not parsed and planned at every call, as PGlite's query() does), with a
// generic plan kept, under the same planner settings.
test.skipIf(backendKind !== "embedded")("the embedded database prepares each statement once and keeps its generic plan, under the pools' planner settings", async () => {
  const settings = await db.rows<{ name: string; setting: string }>(
    sql`SELECT name, setting FROM pg_settings WHERE name IN ('enable_seqscan', 'jit', 'plan_cache_mode')`,
  );
  expect(Object.fromEntries(settings.map((s) => [s.name, s.setting]))).toEqual(PLANNER_SETTINGS);

  const probe = sql`SELECT count(*)::int AS n FROM pg_class WHERE relname = ${"probe-of-plans"}`;
  for (let i = 0; i < 3; i++) await db.rows(probe);
  const plans = await db.rows<{ generic: number; custom: number }>(sql`
    SELECT generic_plans::int AS generic, custom_plans::int AS custom FROM pg_prepared_statements WHERE statement LIKE ${"%FROM pg_class WHERE relname = $1"}`);
  expect(plans).toEqual([{ generic: 3, custom: 0 }]);
});

test.skipIf(backendKind !== "postgres")("neither pool compiles plans (JIT), and the relaxed one commits without waiting for the WAL flush", async () => {
  const settings = async (executor: Pick<Database, "rows">) =>
    (await executor.rows<{ jit: string; sync: string }>(sql`SELECT current_setting('jit') AS jit, current_setting('synchronous_commit') AS sync`))[0];
  expect(await settings(db)).toEqual({ jit: "off", sync: "on" });
  expect(await settings(db.relaxed)).toEqual({ jit: "off", sync: "off" });
});
