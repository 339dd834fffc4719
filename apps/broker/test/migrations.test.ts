import { afterEach, describe, expect, test } from "bun:test";
import { connect, loadMigrations, lockDataDir, migrate, MIGRATION_LOCK_KEY, type Database } from "@switchboard/db";
import { backendKind, freePort, freshBackend, readLog, spawnRaw, waitUntil, type TestBackend } from "@switchboard/testkit";
import { sql } from "drizzle-orm";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { ackDeliveries } from "../src/store/queue/ack.ts";
import { messageState } from "../src/store/queue/inspect.ts";
import { takeReplies } from "../src/store/queue/reply.ts";

const open: Array<Database | TestBackend> = [];
afterEach(async () => {
  for (const thing of open.splice(0).reverse()) {
    if ("close" in thing) await thing.close();
    else await thing.dispose();
  }
});

async function fresh() {
  const backend = await freshBackend();
  open.push(backend);
  const connectOnce = async () => {
    const db = await connect({ databaseUrl: backend.databaseUrl, dataDir: backend.dataDir ?? "" });
    open.push(db);
    return db;
  };
  return { backend, connectOnce };
}

describe("migrations", () => {
  test.skipIf(backendKind !== "postgres")("a migration that builds an index and then drops one does not deadlock with a statement that reads the table and then writes it", async () => {
    const { backend, connectOnce } = await fresh();
    const db = await connectOnce();
    const all = loadMigrations();
    await migrate(db, all);
    // SHARE (the index build) held a while, then ACCESS EXCLUSIVE (the drop), as 0005 and 0006 ran in one transaction.
    const twoSteps = {
      tag: "9999_two_steps",
      statements: ["CREATE INDEX two_steps_idx ON deliveries (priority)", "SELECT pg_sleep(1.5)", "DROP INDEX two_steps_idx"],
    };
    const migrating = migrate(db, [...all, twoSteps]);
    const serving = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
    try {
      await Bun.sleep(300);
      // As an older instance's send statement: it reads the table, then writes it.
      const served = serving`WITH seen AS (SELECT count(*)::int AS n FROM deliveries) DELETE FROM deliveries WHERE attempt < (SELECT n FROM seen) - 1`;
      const [migration, statement] = await Promise.allSettled([migrating, served]);
      expect({ migration: migration.status, statement: statement.status, why: [migration, statement].flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : [])) }).toEqual({
        migration: "fulfilled",
        statement: "fulfilled",
        why: [],
      });
    } finally {
      await serving.end();
    }
  });

  test.skipIf(backendKind !== "postgres")("migrations whose tables another session never lets go of (a pg_dump) fail to be tried again, holding none of them after", async () => {
    const { backend, connectOnce } = await fresh();
    const db = await connectOnce();
    const all = loadMigrations();
    await migrate(db, all);
    const dump = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
    const observer = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
    let end = () => {};
    const ended = new Promise<void>((resolve) => (end = resolve));
    try {
      let holding = () => {};
      const held = new Promise<void>((resolve) => (holding = resolve));
      const reading = dump.begin(async (tx) => {
        await tx`LOCK TABLE messages IN ACCESS SHARE MODE`;
        holding();
        await ended;
      });
      await held;
      const failed = await migrate(db, [...all, { tag: "9999_later", statements: ["SELECT 1"] }]).then(
        () => null,
        (error: unknown) => error as { code?: string },
      );
      expect(failed?.code).toBe("55P03");
      // Nothing the failed try took is held: a write to a table it locked before messages goes through.
      await observer`DELETE FROM deliveries WHERE false`;
      end();
      await reading;
    } finally {
      end();
      await dump.end();
      await observer.end();
    }
  }, 120_000);

  test("bun run db:migrate with DATA_DIR and DATABASE_URL empty (as compose passes them) migrates the default ./.switchboard", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "switchboard-migrate-"));
    try {
      const cli = join(import.meta.dir, "..", "..", "..", "packages", "db", "src", "cli", "migrate.ts");
      const proc = Bun.spawn(["bun", cli], { cwd, env: { PATH: process.env.PATH ?? "", HOME: cwd, DATA_DIR: "", DATABASE_URL: "" }, stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      expect({ code, err: code === 0 ? "" : err }).toEqual({ code: 0, err: "" });
      expect(out).toStartWith("applied: ");
      expect(existsSync(join(cwd, ".switchboard"))).toBe(true);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  test("bun run db:migrate with a DATABASE_URL the driver cannot read names the variable, not the URL's password", async () => {
    const cli = join(import.meta.dir, "..", "..", "..", "packages", "db", "src", "cli", "migrate.ts");
    const env = { PATH: process.env.PATH ?? "", DATABASE_URL: "postgres://switchboard:hunter2-password@127.0.0.1:notaport/x" };
    const proc = Bun.spawn(["bun", cli], { env, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(78);
    expect(err).toContain("DATABASE_URL");
    expect(out + err).not.toContain("hunter2");
  });

  // What an operator running the command reads when it fails: one line that
  // says what was used and why, never the driver's stack.
  async function runMigrateCli(env: Record<string, string>) {
    const cli = join(import.meta.dir, "..", "..", "..", "packages", "db", "src", "cli", "migrate.ts");
    const proc = Bun.spawn(["bun", cli], { env: { PATH: process.env.PATH ?? "", ...env }, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { out, err, code };
  }

  test("bun run db:migrate against a database that refuses connections says so in one line naming DATABASE_URL, without the password", async () => {
    const port = await freePort();
    const { out, err, code } = await runMigrateCli({ DATABASE_URL: `postgres://switchboard:hunter2-password@127.0.0.1:${port}/x` });
    expect(code).toBe(1);
    expect(err.trimEnd().split("\n")).toEqual([expect.stringContaining("DATABASE_URL")]);
    expect(err).toContain("ECONNREFUSED");
    expect(out + err).not.toContain("hunter2");
  });

  test.skipIf(backendKind !== "postgres")("bun run db:migrate on a database that does not exist says so in one line (needs DATABASE_URL)", async () => {
    const { backend } = await fresh();
    const url = new URL(backend.databaseUrl!);
    url.pathname = "/no_such_database_here";
    const { err, code } = await runMigrateCli({ DATABASE_URL: url.toString() });
    expect(code).toBe(1);
    expect(err.trimEnd().split("\n")).toEqual([expect.stringContaining('database "no_such_database_here" does not exist')]);
  });

  test("bun run db:migrate with a DATABASE_URL that is not postgres:// is refused naming the variable, as the broker refuses it", async () => {
    const { err, code } = await runMigrateCli({ DATABASE_URL: "mysql://switchboard:hunter2-password@127.0.0.1/x" });
    expect(code).toBe(78);
    expect(err.trimEnd().split("\n")).toEqual([expect.stringContaining("DATABASE_URL")]);
    expect(err).toContain("postgres://");
    expect(err).not.toContain("hunter2");
  });

  test("bun run db:migrate on an embedded DATA_DIR a broker holds exits 75 with the lock's one line, as the broker does", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switchboard-migrate-locked-"));
    const release = lockDataDir(dataDir);
    try {
      const { err, code } = await runMigrateCli({ DATA_DIR: dataDir, HOME: dataDir });
      expect(code).toBe(75);
      expect(err.trimEnd().split("\n")).toEqual([expect.stringContaining(`DATA_DIR ${dataDir} is in use by another broker (pid ${process.pid}`)]);
    } finally {
      release();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test("bun run db:migrate on a DATA_DIR that cannot be a directory exits 78 with one line naming it, as the broker does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-migrate-file-"));
    const file = join(dir, "data");
    writeFileSync(file, "");
    try {
      const { err, code } = await runMigrateCli({ DATA_DIR: file, HOME: dir });
      expect(code).toBe(78);
      expect(err.trimEnd().split("\n")).toEqual([expect.stringMatching(new RegExp(`^DATA_DIR ${file} cannot hold the embedded database: `))]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.skipIf(backendKind !== "postgres")("a migration its database refuses is logged as db migration failed, not as an outage, and retried (needs DATABASE_URL)", async () => {
    const { backend } = await fresh();
    const squatter = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
    await squatter`CREATE TABLE meshes (squatter int)`;
    await squatter.end();
    const proc = spawnRaw(backend.env);
    const log = readLog(proc.stderr);
    let messages: Array<string | undefined>;
    try {
      // What it logged by its second failed attempt.
      messages = await waitUntil(() => {
        const now = log.lines.map((l) => l.msg);
        return now.filter((m) => m === "db migration failed").length >= 2 && now;
      }, 30_000, "two failed migrations logged");
    } finally {
      proc.kill("SIGKILL");
      await proc.exited;
      await log.done;
    }
    expect(messages.filter((m) => m === "db migration failed")).toHaveLength(2);
    expect(messages).not.toContain("db ping failed");
  });

  test.skipIf(backendKind !== "postgres")("a start whose migrations wait for another process's lock logs that it waits and for whom, then migrates once it is released (needs DATABASE_URL)", async () => {
    const { backend } = await fresh();
    const holder = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
    // The same key held in another database of the server (another broker's migration): not the holder named.
    const otherDatabase = new URL(backend.databaseUrl!);
    otherDatabase.pathname = "/postgres";
    const elsewhere = postgres(otherDatabase.toString(), { max: 1, onnotice: () => {} });
    try {
      const [{ pid }] = await holder<[{ pid: number }]>`SELECT pg_backend_pid() AS pid, pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
      await elsewhere`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
      const proc = spawnRaw(backend.env);
      const { lines, done: reading } = readLog(proc.stderr);
      try {
        const waiting = await waitUntil(() => lines.find((l) => l.msg === "db migrations wait for the migration lock"), 20_000, "the wait logged");
        expect(waiting.holderPid).toBe(pid);
        await holder`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
        await waitUntil(() => lines.find((l) => l.msg === "broker listening"), 30_000, "the broker listening");
        expect(lines.filter((l) => l.msg === "migrations applied")).toHaveLength(1);
      } finally {
        proc.kill("SIGKILL");
        await proc.exited;
        await reading;
      }
    } finally {
      await holder.end();
      await elsewhere.end();
    }
  });

  test.skipIf(backendKind !== "postgres")("bun run db:migrate waiting for another process's migration lock says so on stderr, then migrates once it is released (needs DATABASE_URL)", async () => {
    const { backend } = await fresh();
    const holder = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
    try {
      const [{ pid }] = await holder<[{ pid: number }]>`SELECT pg_backend_pid() AS pid, pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
      const cli = join(import.meta.dir, "..", "..", "..", "packages", "db", "src", "cli", "migrate.ts");
      const proc = Bun.spawn(["bun", cli], { env: { PATH: process.env.PATH ?? "", DATABASE_URL: backend.databaseUrl! }, stdout: "pipe", stderr: "pipe" });
      let err = "";
      const reading = (async () => {
        const decoder = new TextDecoder();
        for await (const chunk of proc.stderr) err += decoder.decode(chunk, { stream: true });
      })();
      await waitUntil(() => err.includes("\n") || undefined, 20_000, "the wait said");
      expect(err).toBe(`waiting for the migration lock, held by another process (Postgres backend pid ${pid})\n`);
      await holder`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
      const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      await reading;
      expect(code).toBe(0);
      expect(out).toStartWith("applied: ");
    } finally {
      await holder.end();
    }
  });

  test("apply to an empty database, then re-apply as a no-op", async () => {
    const { connectOnce } = await fresh();
    const db = await connectOnce();
    const all = loadMigrations().map((m) => m.tag);
    expect(all.length).toBeGreaterThan(0);
    expect(await migrate(db)).toEqual(all);
    expect(await migrate(db)).toEqual([]);

    const tables = await db.rows<{ name: string }>(
      sql`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
    );
    expect(tables.map((t) => t.name)).toEqual(
      expect.arrayContaining(["meshes", "members", "tokens", "presences", "messages", "deliveries", "audit_log"]),
    );
  });

  test("a delivery acknowledged in place (before 0010, or by an instance from before it) reads as acknowledged beside one an ack moved", async () => {
    const { connectOnce } = await fresh();
    const db = await connectOnce();
    const all = loadMigrations();
    const before = all.findIndex((m) => m.tag === "0010_acked_deliveries");
    expect(before).toBeGreaterThan(0);
    await migrate(db, all.slice(0, before));
    const [ids] = await db.rows<{ meshId: string; memberId: string; requestId: string }>(sql`
      WITH mesh AS (INSERT INTO meshes (slug, name) VALUES ('m', 'm') RETURNING id),
      member AS (INSERT INTO members (mesh_id, pubkey, display_name) SELECT id, 'k', 'a' FROM mesh RETURNING id, mesh_id),
      request AS (
        INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, expires_at)
        SELECT mesh_id, id, 'k', 'next', 'n', 'request', now() + interval '1 day' FROM member RETURNING id)
      SELECT member.mesh_id AS "meshId", member.id AS "memberId", request.id AS "requestId" FROM member, request`);
    // Two replies to the request, owed to its sender: one acked as an instance from before 0010 acks.
    const reply = async (ciphertext: string) => {
      const [row] = await db.rows<{ id: string }>(sql`
        WITH m AS (
          INSERT INTO messages (mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, reply_to, expires_at)
          VALUES (${ids!.meshId}::uuid, ${ids!.memberId}::uuid, 'k', 'next', 'n', ${ciphertext}, ${ids!.requestId}::uuid, now() + interval '1 day')
          RETURNING id)
        INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at, state, lease_presence_id, lease_expires_at, attempt, delivered_at)
        SELECT id, ${ids!.memberId}::uuid, 'next', now() + interval '1 day', 'leased', gen_random_uuid(), now() + interval '1 minute', 1, now() FROM m
        RETURNING message_id AS id`);
      return row!.id;
    };
    const inPlace = await reply("in place");
    await db.rows(sql`
      UPDATE deliveries SET state = 'acked', acked_at = now(), lease_presence_id = NULL, lease_expires_at = NULL
      WHERE message_id = ${inPlace}::uuid`);
    expect(await migrate(db, all)).toEqual(all.slice(before).map((m) => m.tag));
    const moved = await reply("moved");
    expect(await ackDeliveries(db, [{ memberId: ids!.memberId, messageId: moved }])).toBe(1);
    // Neither is acknowledged again; both read as acknowledged, with their times.
    expect(await ackDeliveries(db, [{ memberId: ids!.memberId, messageId: inPlace }])).toBe(0);
    for (const id of [inPlace, moved]) {
      expect((await messageState(db, id))?.recipients).toEqual([
        { pubkey: "k", state: "acked", attempt: 1, deliveredAt: expect.any(String), ackedAt: expect.any(String) },
      ]);
    }
    // The first reply the sender took is the one acknowledged in place (the older).
    expect((await takeReplies(db, ids!.memberId, [ids!.requestId])).map((r) => r.messageId)).toEqual([inPlace]);
    const [tables] = await db.rows<{ inPlace: number; moved: number }>(sql`
      SELECT (SELECT count(*)::int FROM deliveries WHERE state = 'acked') AS "inPlace", (SELECT count(*)::int FROM acked_deliveries) AS moved`);
    expect(tables).toEqual({ inPlace: 1, moved: 1 });
  });

  // The pending migrations run in one transaction, so a lock one takes is
  // held until the last is done: 0011 builds its index on deliveries first
  // and drops the one on messages last, or every statement on messages of
  // the instances still running would wait through the build.
  test.skipIf(backendKind !== "postgres")("migrations wait for a write under way on any table of the schema, holding none of the others meanwhile, then apply (needs DATABASE_URL)", async () => {
    const { backend, connectOnce } = await fresh();
    const db = await connectOnce();
    const all = loadMigrations();
    const at = all.findIndex((m) => m.tag === "0011_queued_expiry_index");
    expect(at).toBeGreaterThan(0);
    await migrate(db, all.slice(0, at));
    const writer = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
    const observer = postgres(backend.databaseUrl!, { max: 1, onnotice: () => {} });
    // A write under way on a table the migrations do not change, as an instance's hello: they wait for its commit.
    let commit = () => {};
    const committed = new Promise<void>((resolve) => (commit = resolve));
    try {
      let writing = () => {};
      const written = new Promise<void>((resolve) => (writing = resolve));
      const write = writer.begin(async (tx) => {
        await tx`LOCK TABLE presences IN ROW EXCLUSIVE MODE`;
        writing();
        await committed;
      });
      await written;
      let done = false;
      const migrating = migrate(db, all).finally(() => (done = true));
      await waitUntil(
        async () =>
          (await observer<Array<{ n: number }>>`SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%FROM pg_locks l%'`)[0]!.n > 0,
        30_000,
        "the migrations looking for their tables free",
      );
      // Tables before presences in the order they are locked in: asked for all at once, they would be held now.
      for (let i = 0; i < 5; i++) {
        expect((await observer<Array<{ n: number }>>`SELECT count(*)::int AS n FROM messages`)[0]!.n).toBe(0);
        expect((await observer<Array<{ n: number }>>`SELECT count(*)::int AS n FROM deliveries`)[0]!.n).toBe(0);
        await Bun.sleep(100);
      }
      expect(done).toBe(false);
      commit();
      await write;
      expect(await migrating).toEqual(all.slice(at).map((m) => m.tag));
    } finally {
      // Ends the write (and so the migration) when the test failed before it did.
      commit();
      await writer.end();
      await observer.end();
    }
  });

  test("two migrators starting together apply each migration once", async () => {
    const { backend, connectOnce } = await fresh();
    const first = await connectOnce();
    // Embedded mode is one process with one connection; both run on it.
    const second = backend.kind === "postgres" ? await connectOnce() : first;
    const [a, b] = await Promise.all([migrate(first), migrate(second)]);
    const all = loadMigrations().map((m) => m.tag);
    expect([...a, ...b].sort()).toEqual([...all].sort());
    const rows = await first.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM switchboard_migrations`);
    expect(rows[0]?.n).toBe(all.length);
  });

  test("the claim of a recipient's queued deliveries uses an index, not a table scan", async () => {
    const { connectOnce } = await fresh();
    const db = await connectOnce();
    await migrate(db);
    const plan = await db.transaction(async (tx) => {
      await tx.rows(sql`SET LOCAL enable_seqscan = off`);
      return tx.rows<Record<string, string>>(sql`
        EXPLAIN SELECT id FROM deliveries
        WHERE recipient_member_id = gen_random_uuid() AND state = 'queued'
        ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED`);
    });
    const text = plan.map((row) => Object.values(row).join(" ")).join("\n");
    expect(text).toContain("deliveries_queued_idx");
  });
});
