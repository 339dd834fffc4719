// Housekeeping statements: nothing here may grow without bound. (Messages
// and deliveries are pruned by the queue: queue/prune.ts.)
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

export async function pruneHelloReplays(db: Executor): Promise<void> {
  await db.rows(sql`DELETE FROM hello_replays WHERE expires_at < now()`);
}

export async function prunePendingSignals(db: Executor): Promise<void> {
  await db.rows(sql`DELETE FROM pending_hook_statuses WHERE expires_at < now()`);
}

// The rows a prune deletes are chosen through the index on their age, in
// that order, and deleted by id from an array: under a generic plan Postgres
// guesses that a third of the table is past any cutoff, and would read all
// of it to choose them, or hash it all to delete them (an IN of a subquery).

/**
 * Presences gone longer than the retention, at most `limit` a tick: after a
 * reconnect storm, or a long pause of housekeeping, there may be millions,
 * and one statement deleting them all would be one long transaction.
 */
export async function pruneGonePresences(db: Executor, retentionSeconds: number, limit: number): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    WITH gone AS (
      DELETE FROM presences WHERE id = ANY (ARRAY(
        SELECT id FROM presences WHERE disconnected_at < now() - make_interval(secs => ${retentionSeconds})
        ORDER BY disconnected_at
        LIMIT ${limit}))
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM gone`);
  return rows[0]?.n ?? 0;
}

export async function pruneStoppedInstances(db: Executor, retentionSeconds: number): Promise<void> {
  await db.rows(sql`
    DELETE FROM broker_instances WHERE stopped_at < now() - make_interval(secs => ${retentionSeconds})`);
}

/** Audit rows older than the retention, at most 10,000 a tick; returns how many went. */
export async function pruneAuditLog(db: Executor, retentionSeconds: number): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    WITH gone AS (
      DELETE FROM audit_log WHERE id = ANY (ARRAY(
        SELECT id FROM audit_log WHERE at < now() - make_interval(secs => ${retentionSeconds}) ORDER BY at LIMIT 10000))
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM gone`);
  return rows[0]?.n ?? 0;
}

/**
 * Vacuums the tables that need it, the catalogs' too, and returns their
 * names. For the embedded database, which runs no autovacuum (it has no
 * background workers): without it, the space of every row a send, claim,
 * ack or prune removed stays unusable and the files grow for as long as the
 * broker runs, and the rows no vacuum froze would, some two billion
 * transactions on, read as written in the future — the catalogs' rows that
 * name the broker's tables among them.
 *
 * A table needs a vacuum when it has dead rows (PGlite's counts lag its
 * writes until flushed; flushed first, they are current), and is frozen
 * whole when its oldest unfrozen transaction is older than `freezeAge`
 * transactions (the database's `autovacuum_freeze_max_age` unless given:
 * autovacuum's rule; a frozen table's age starts again from nought). The
 * counts start from nought each time the database is opened, so each of
 * the broker's tables is vacuumed once in a process whatever its counts:
 * dead rows left by the last one are then reclaimed too. After that, an
 * idle database is vacuumed nothing. One table a statement, so the texts
 * the embedded database keeps prepared stay one per table; not in a
 * transaction, where VACUUM cannot run.
 */
export async function vacuumTables(db: Executor, freezeAge?: number): Promise<string[]> {
  await db.rows(sql`SELECT pg_stat_force_next_flush()`);
  // TOAST tables by their age too, unless their table is frozen now (which
  // freezes them with it): a vacuum of their table that skipped their pages
  // leaves their oldest transaction where it was. (Temporary tables are
  // their own session's to vacuum.)
  const tables = await db.rows<{ schema: string; name: string; freeze: boolean }>(sql`
    WITH setting AS (
      SELECT coalesce(${freezeAge ?? null}::int, current_setting('autovacuum_freeze_max_age')::int) AS freeze_age)
    SELECT n.nspname AS schema, c.relname AS name, age(c.relfrozenxid) > s.freeze_age AS "freeze"
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN setting s
    WHERE c.relpersistence <> 't'
      AND (c.relkind = 'r' AND (pg_stat_get_dead_tuples(c.oid) > 0
                                OR pg_stat_get_last_vacuum_time(c.oid) IS NULL AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                                OR age(c.relfrozenxid) > s.freeze_age)
           OR c.relkind = 't' AND age(c.relfrozenxid) > s.freeze_age
              AND NOT EXISTS (SELECT 1 FROM pg_class o WHERE o.reltoastrelid = c.oid AND age(o.relfrozenxid) > s.freeze_age))
    ORDER BY schema, name`);
  for (const { schema, name, freeze } of tables) {
    const table = sql`${sql.identifier(schema)}.${sql.identifier(name)}`;
    await db.rows(freeze ? sql`VACUUM (FREEZE) ${table}` : sql`VACUUM ${table}`);
  }
  return tables.map(({ schema, name }) => (schema === "public" ? name : `${schema}.${name}`));
}

/**
 * Writes a checkpoint once a segment or more of write-ahead log was written
 * since the last one, and says whether it did. For the embedded database:
 * PGlite runs Postgres as one process, with no checkpointer, and writes a
 * checkpoint only as it closes; until then pg_wal keeps every segment since
 * the start (gigabytes a day under steady traffic), and a crash replays them
 * all at the next start. A checkpoint lets Postgres remove or recycle the
 * segments before it, as the checkpointer of a server does; a segment goes
 * whole, so one before a segment is filled would free nothing.
 */
export async function checkpointIfWalGrew(db: Executor): Promise<boolean> {
  const [wal] = await db.rows<{ due: boolean }>(sql`
    SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), (pg_control_checkpoint()).redo_lsn)
           >= pg_size_bytes(current_setting('wal_segment_size')) AS due`);
  if (!wal?.due) return false;
  await db.rows(sql`CHECKPOINT`);
  return true;
}
