// PGlite statements as named prepared statements: parsed once per text, run
// under the same locks as PGlite's own query(), and a text the backend
// refuses is not kept, and the notifications they raise reach listeners. On a
// PGlite in memory, started from the template.
import { PGlite } from "@electric-sql/pglite";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { errorCode } from "../src/connection-errors.ts";
import { EmbeddedStatements } from "../src/embedded-statements.ts";
import { loadTemplate } from "../src/embedded-template.ts";

let client: PGlite;

beforeAll(async () => {
  const template = await loadTemplate();
  client = await PGlite.create(template ? { loadDataDir: template } : {});
  await client.exec("CREATE TABLE probe (n int PRIMARY KEY)");
});

afterAll(async () => {
  await client?.close();
});

/** How many times each text was prepared by the backend, and planned. */
async function preparedTexts(): Promise<Map<string, { plans: number }>> {
  const { rows } = await client.query<{ statement: string; plans: number }>(
    "SELECT statement, (generic_plans + custom_plans)::int AS plans FROM pg_prepared_statements WHERE NOT from_sql",
  );
  return new Map(rows.map((r) => [r.statement, { plans: r.plans }]));
}

test("each text is prepared once, and every call runs it with its own values", async () => {
  const statements = new EmbeddedStatements(client);
  const text = "SELECT $1::int * 2 AS doubled, $2::text AS label";
  const results: unknown[][] = await Promise.all([statements.rows(text, [1, "a"]), statements.rows(text, [2, "b"])]);
  results.push(await statements.rows(text, [3, null]));
  expect(results).toEqual([[{ doubled: 2, label: "a" }], [{ doubled: 4, label: "b" }], [{ doubled: 6, label: null }]]);
  // Two first calls at once prepared it once.
  expect((await preparedTexts()).get(text)).toEqual({ plans: 3 });
});

test("a statement that fails keeps its SQLSTATE, and the next call of its text runs, even one refused as it was prepared", async () => {
  const statements = new EmbeddedStatements(client);
  const insert = "INSERT INTO probe (n) VALUES ($1) RETURNING n";
  expect(await statements.rows(insert, [1])).toEqual([{ n: 1 }]);
  expect(errorCode(await statements.rows(insert, [1]).catch((e: unknown) => e))).toBe("23505");
  expect(await statements.rows(insert, [2])).toEqual([{ n: 2 }]);

  // Refused as it was prepared: not kept, so once its table exists it runs.
  const early = "SELECT count(*)::int AS n FROM created_later";
  expect(errorCode(await statements.rows(early, []).catch((e: unknown) => e))).toBe("42P01");
  await client.exec("CREATE TABLE created_later (n int)");
  expect(await statements.rows(early, [])).toEqual([{ n: 0 }]);
});

test("a call made during a transaction runs after it, not inside it", async () => {
  const statements = new EmbeddedStatements(client);
  let inside!: () => void;
  const begun = new Promise<void>((resolve) => (inside = resolve));
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const transaction = client
    .transaction(async (tx) => {
      await tx.query("INSERT INTO probe (n) VALUES (100)");
      inside();
      await held;
      await tx.rollback();
    })
    .catch(() => undefined);
  await begun;
  const counted = statements.rows<{ n: number }>("SELECT count(*)::int AS n FROM probe WHERE n = $1", [100]);
  const settledFirst = await Promise.race([counted.then(() => "statement"), Bun.sleep(100).then(() => "transaction")]);
  release();
  await transaction;
  expect(settledFirst).toBe("transaction");
  expect(await counted).toEqual([{ n: 0 }]);
});

test("past its limit of texts, a new text runs unnamed and is not kept", async () => {
  const statements = new EmbeddedStatements(client, 2);
  const texts = ["SELECT $1::int + 10 AS n", "SELECT $1::int + 20 AS n", "SELECT $1::int + 30 AS n"];
  for (const [i, text] of texts.entries()) expect(await statements.rows(text, [i])).toEqual([{ n: i + 10 * (i + 1) }]);
  const kept = await preparedTexts();
  expect(texts.map((t) => kept.has(t))).toEqual([true, true, false]);
});

test("a notification raised by a statement reaches the client's listeners", async () => {
  const statements = new EmbeddedStatements(client);
  let heard!: (payload: string) => void;
  const payload = new Promise<string>((resolve) => (heard = resolve));
  const unlisten = await client.listen("embedded_statements_probe", (p) => heard(p));
  await statements.rows("SELECT pg_notify('embedded_statements_probe', $1)", ["named"]);
  expect(await payload).toBe("named");
  await unlisten();
});
