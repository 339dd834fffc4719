// The embedded database runs on a thread of its own: the broker's thread
// goes on while a statement executes, and what crosses between the two
// (rows, errors with their SQLSTATE, transactions, notifications) is what the
// store reads from Postgres. On a DATA_DIR on disk, started from the template.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, errorCode, type Database } from "../src/index.ts";

const dirs: string[] = [];
const newDataDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-embedded-thread-"));
  dirs.push(dir);
  return dir;
};

let db: Database;

beforeAll(async () => {
  db = await connect({ dataDir: newDataDir() });
  await db.rows(sql`CREATE TABLE probe (n int PRIMARY KEY)`);
});

afterAll(async () => {
  await db?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

test("the broker's thread goes on while a statement executes", async () => {
  // On the caller's thread the timer could only fire once the rows were back.
  const order: string[] = [];
  const counted = db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM generate_series(1, 3000000)`).then((rows) => {
    order.push("rows");
    return rows;
  });
  setTimeout(() => order.push("timer"), 1);
  expect(await counted).toEqual([{ n: 3000000 }]);
  expect(order).toEqual(["timer", "rows"]);
});

test("an error comes back with its SQLSTATE and its message", async () => {
  await db.rows(sql`INSERT INTO probe (n) VALUES (1)`);
  const error = await db.rows(sql`INSERT INTO probe (n) VALUES (1)`).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(Error);
  expect(errorCode(error)).toBe("23505");
  expect((error as Error).message).toContain("probe_pkey");
  expect(errorCode(await db.rows(sql`SELECT * FROM no_such_table`).catch((e: unknown) => e))).toBe("42P01");
});

test("a transaction commits its work, and one whose work throws is rolled back with that error", async () => {
  expect(await db.transaction(async (tx) => (await tx.rows<{ n: number }>(sql`INSERT INTO probe (n) VALUES (10), (11) RETURNING n`)).length)).toBe(2);

  const thrown = new Error("the work failed");
  const outcome = await db
    .transaction(async (tx) => {
      await tx.rows(sql`INSERT INTO probe (n) VALUES (12)`);
      throw thrown;
    })
    .catch((e: unknown) => e);
  expect(outcome).toBe(thrown);

  // A statement the database refuses inside the work rolls it back too.
  const refused = await db
    .transaction(async (tx) => {
      await tx.rows(sql`INSERT INTO probe (n) VALUES (13)`);
      await tx.rows(sql`INSERT INTO probe (n) VALUES (10)`);
    })
    .catch((e: unknown) => e);
  expect(errorCode(refused)).toBe("23505");

  const rows = await db.rows<{ n: number }>(sql`SELECT n FROM probe WHERE n >= 10 ORDER BY n`);
  expect(rows.map((r) => r.n)).toEqual([10, 11]);
});

test("a statement posted during a transaction runs after it, and the ended transaction takes no more", async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let inside!: () => void;
  const begun = new Promise<void>((resolve) => (inside = resolve));
  let ended!: (query: Parameters<Database["rows"]>[0]) => Promise<unknown>;
  const transaction = db.transaction(async (tx) => {
    ended = (query) => tx.rows(query);
    await tx.rows(sql`INSERT INTO probe (n) VALUES (20)`);
    inside();
    await held;
  });
  await begun;
  // Outside the transaction: it sees the row only once the transaction committed.
  const seen = db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM probe WHERE n = 20`);
  release();
  await transaction;
  expect(await seen).toEqual([{ n: 1 }]);
  expect(await ended(sql`SELECT 1`).catch((e: unknown) => (e as Error).message)).toContain("is not open");
});

test("a notification reaches its listener until it unlistens", async () => {
  const heard: string[] = [];
  const unlisten = await db.listen("probe_channel", (payload) => heard.push(payload));
  await db.rows(sql`SELECT pg_notify('probe_channel', 'one')`);
  await db.rows(sql`SELECT 1`);
  expect(heard).toEqual(["one"]);
  await unlisten();
  await db.rows(sql`SELECT pg_notify('probe_channel', 'two')`);
  await db.rows(sql`SELECT 1`);
  expect(heard).toEqual(["one"]);
});

test("closed, it refuses statements, and the directory can be opened again", async () => {
  const dataDir = newDataDir();
  const first = await connect({ dataDir });
  await first.rows(sql`CREATE TABLE kept (n int)`);
  await first.rows(sql`INSERT INTO kept VALUES (7)`);
  await first.close();
  expect(await first.rows(sql`SELECT 1`).catch((e: unknown) => (e as Error).message)).toContain("closed");

  const again = await connect({ dataDir });
  try {
    expect(await again.rows(sql`SELECT n FROM kept`)).toEqual([{ n: 7 }]);
  } finally {
    await again.close();
  }
});

// The thread holds the process only while it owes an answer: a script that
// awaits a statement gets its rows, and one that never closes its database
// still exits once it is done.
test("a process waits for its statement's rows, and exits when it has nothing left to wait for", async () => {
  const script = `
    import { sql } from "drizzle-orm";
    import { connect } from ${JSON.stringify(join(import.meta.dir, "..", "src", "index.ts"))};
    const db = await connect({ dataDir: ${JSON.stringify(newDataDir())} });
    const rows = await db.rows(sql\`SELECT count(*)::int AS n FROM generate_series(1, 1000000)\`);
    console.log(JSON.stringify(rows));
  `;
  const child = Bun.spawn(["bun", "-e", script], { cwd: join(import.meta.dir, ".."), stdout: "pipe", stderr: "pipe" });
  const [code, out] = await Promise.all([child.exited, new Response(child.stdout).text()]);
  expect({ code, out: out.trim() }).toEqual({ code: 0, out: '[{"n":1000000}]' });
});
