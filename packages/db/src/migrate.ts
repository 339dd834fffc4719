// Applies the SQL migrations drizzle-kit generated into ../drizzle, in the
// order of its journal, in one transaction under an advisory lock: instances
// starting together queue on the lock, and the later ones find nothing to do.
import { sql } from "drizzle-orm";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Database, Executor } from "./connect.ts";

const MIGRATIONS_DIR = join(import.meta.dir, "..", "drizzle");
// Any constant works; it only has to be the same for every instance.
export const MIGRATION_LOCK_KEY = 0x5b0a_7d01;
/** How often, and how long apart, migrations look for their tables free of others' locks before they ask for them. */
const LOCK_WAITS = 100;
const LOCK_WAIT_MS = 50;

interface JournalEntry {
  idx: number;
  tag: string;
}

export interface Migration {
  tag: string;
  statements: string[];
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const journal = JSON.parse(readFileSync(join(dir, "meta", "_journal.json"), "utf8")) as {
    entries: JournalEntry[];
  };
  return [...journal.entries]
    .sort((a, b) => a.idx - b.idx)
    .map((entry) => ({
      tag: entry.tag,
      statements: readFileSync(join(dir, `${entry.tag}.sql`), "utf8")
        .split("--> statement-breakpoint")
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    }));
}

/**
 * Returns the tags it applied (empty when the schema was already current).
 * When another process holds the lock, onWait hears of it (with that
 * process's backend pid, when the server shows it) before the wait begins:
 * the wait may be long, and says nothing otherwise.
 */
export async function migrate(
  db: Database,
  migrations = loadMigrations(),
  onWait?: (holderPid: number | null) => void,
): Promise<string[]> {
  return db.transaction(async (tx) => {
    const [free] = await tx.rows<{ locked: boolean }>(sql`SELECT pg_try_advisory_xact_lock(${MIGRATION_LOCK_KEY}) AS locked`);
    if (!free?.locked) {
      // A key below 2^31 is held as classid 0, objid the key.
      const [holder] = await tx.rows<{ pid: number }>(sql`
        SELECT pid FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = ${MIGRATION_LOCK_KEY} AND objsubid = 1
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
      onWait?.(holder?.pid ?? null);
      await tx.rows(sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    }
    await tx.rows(sql`
      CREATE TABLE IF NOT EXISTS switchboard_migrations (
        tag text PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const done = new Set(
      (await tx.rows<{ tag: string }>(sql`SELECT tag FROM switchboard_migrations`)).map((r) => r.tag),
    );
    const pending = migrations.filter((m) => !done.has(m.tag));
    if (pending.length > 0) await lockEveryTable(tx);
    const applied: string[] = [];
    for (const migration of pending) {
      for (const statement of migration.statements) await tx.rows(sql.raw(statement));
      await tx.rows(sql`INSERT INTO switchboard_migrations (tag) VALUES (${migration.tag})`);
      applied.push(migration.tag);
    }
    return applied;
  });
}

/**
 * Every table of the schema, locked as a migration's strongest statement
 * would lock it, before the first one runs. Taken step by step instead (an
 * index built under SHARE, then one dropped under ACCESS EXCLUSIVE), the
 * locks deadlocked with the statements of instances still serving, which
 * read a table under the first and waited to write it: the migration was
 * cancelled and built its indexes again, over and over, through a rolling
 * upgrade. Those statements now wait for the migration's commit. The locks
 * are asked for once no other session holds one on those tables (for at
 * most LOCK_WAITS tries), so that the tables stay readable while the
 * migration waits for a long write. (A lock that cannot be had is not
 * tried and let go: a statement that fails ends the driver's transaction.)
 */
async function lockEveryTable(tx: Executor): Promise<void> {
  const tables = await tx.rows<{ name: string }>(sql`
    SELECT quote_ident(tablename) AS name FROM pg_tables
    WHERE schemaname = current_schema() AND tablename <> 'switchboard_migrations'
    ORDER BY tablename`);
  if (tables.length === 0) return;
  for (let tries = 1; tries < LOCK_WAITS; tries++) {
    const [held] = await tx.rows<{ n: number }>(sql`
      SELECT count(*)::int AS n FROM pg_locks l
      WHERE l.pid <> pg_backend_pid() AND l.granted
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.relation IN (SELECT c.oid FROM pg_class c
                           WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
                             AND c.relname <> 'switchboard_migrations')`);
    if (held?.n === 0) break;
    await Bun.sleep(LOCK_WAIT_MS);
  }
  await tx.rows(sql.raw(`LOCK TABLE ${tables.map((t) => t.name).join(", ")} IN ACCESS EXCLUSIVE MODE`));
}
