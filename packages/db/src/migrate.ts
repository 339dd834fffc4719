// Applies the SQL migrations drizzle-kit generated into ../drizzle, in the
// order of its journal, in one transaction under an advisory lock: instances
// starting together queue on the lock, and the later ones find nothing to do.
import { getTableName, is, sql } from "drizzle-orm";
import { PgTable } from "drizzle-orm/pg-core";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Database, Executor } from "./connect.ts";
import * as schema from "./schema.ts";

const MIGRATIONS_DIR = join(import.meta.dir, "..", "drizzle");
// Any constant works; it only has to be the same for every instance.
export const MIGRATION_LOCK_KEY = 0x5b0a_7d01;
/** How often, and how long apart, migrations look for their tables free of others' locks before they ask for them (30 s). */
const LOCK_WAITS = 600;
const LOCK_WAIT_MS = 50;
/** How long migrations wait for their tables' locks once asked for, holding the ones they have, before they fail and are tried again. */
const LOCK_TIMEOUT = "2s";

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
    if (pending.length > 0) await lockBrokerTables(tx);
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
 * The broker's tables, locked as a migration's strongest statement would
 * lock them, before the first one runs. Taken step by step instead (an
 * index built under SHARE, then one dropped under ACCESS EXCLUSIVE), the
 * locks deadlocked with the statements of instances still serving, which
 * read a table under the first and waited to write it: the migration was
 * cancelled and built its indexes again, over and over, through a rolling
 * upgrade. Those statements now wait for the migration's commit. The locks
 * are asked for once no other session holds one on those tables (looked for
 * LOCK_WAITS times), so that the tables stay readable while the migration
 * waits for a long write; a lock still not had within LOCK_TIMEOUT (a
 * pg_dump holding them all, a statement that locks in another order) fails
 * the migration, which the caller tries again, rather than stall every
 * statement behind the ones it holds. (A lock that cannot be had is not
 * tried and let go within the transaction: a statement that fails ends the
 * driver's transaction.)
 */
async function lockBrokerTables(tx: Executor): Promise<void> {
  const names = Object.values(schema).flatMap((t) => (is(t, PgTable) ? [getTableName(t)] : []));
  const tables = await tx.rows<{ oid: string; name: string }>(sql`
    SELECT c.oid::text AS oid, quote_ident(c.relname) AS name FROM pg_class c
    WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
      AND c.relkind IN ('r', 'p') AND c.relname = ANY (${`{${names.join(",")}}`}::text[])
    ORDER BY c.relname`);
  if (tables.length === 0) return;
  const oids = `{${tables.map((t) => t.oid).join(",")}}`;
  for (let tries = 0; tries < LOCK_WAITS; tries++) {
    const [held] = await tx.rows<{ n: number }>(sql`
      SELECT count(*)::int AS n FROM pg_locks l
      WHERE l.pid <> pg_backend_pid() AND l.granted AND l.relation = ANY (${oids}::oid[])
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
    if (held?.n === 0) break;
    await Bun.sleep(LOCK_WAIT_MS);
  }
  await tx.rows(sql.raw(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`));
  await tx.rows(sql.raw(`LOCK TABLE ${tables.map((t) => t.name).join(", ")} IN ACCESS EXCLUSIVE MODE`));
  // Back to the session's own (a role's setting, say) for the migrations themselves.
  await tx.rows(sql`SET LOCAL lock_timeout TO DEFAULT`);
}
