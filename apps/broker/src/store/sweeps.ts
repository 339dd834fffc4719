// Housekeeping statements: nothing here may grow without bound.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

export async function pruneHelloReplays(db: Executor): Promise<void> {
  await db.rows(sql`DELETE FROM hello_replays WHERE expires_at < now()`);
}

export async function prunePendingSignals(db: Executor): Promise<void> {
  await db.rows(sql`DELETE FROM pending_hook_statuses WHERE expires_at < now()`);
}

/** Expired messages go with their deliveries (ON DELETE CASCADE). */
export async function pruneExpiredMessages(db: Executor, limit: number): Promise<number> {
  const rows = await db.rows(sql`
    DELETE FROM messages WHERE id IN (
      SELECT id FROM messages WHERE expires_at < now() LIMIT ${limit})
    RETURNING id`);
  return rows.length;
}

// A message is kept while any recipient still owes an ack, and for the
// retention window after, so a retried send within it is still recognised.
export async function pruneDeliveredMessages(db: Executor, retentionSeconds: number, limit: number): Promise<number> {
  const rows = await db.rows(sql`
    DELETE FROM messages WHERE id IN (
      SELECT m.id FROM messages m
      WHERE m.created_at < now() - make_interval(secs => ${retentionSeconds})
        AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.state <> 'acked')
      LIMIT ${limit})
    RETURNING id`);
  return rows.length;
}

export async function pruneGonePresences(db: Executor, retentionSeconds: number): Promise<void> {
  await db.rows(sql`
    DELETE FROM presences WHERE disconnected_at < now() - make_interval(secs => ${retentionSeconds})`);
}

export async function pruneStoppedInstances(db: Executor, retentionSeconds: number): Promise<void> {
  await db.rows(sql`
    DELETE FROM broker_instances WHERE stopped_at < now() - make_interval(secs => ${retentionSeconds})`);
}

export async function pruneAuditLog(db: Executor, retentionSeconds: number): Promise<void> {
  await db.rows(sql`
    DELETE FROM audit_log WHERE id IN (
      SELECT id FROM audit_log WHERE at < now() - make_interval(secs => ${retentionSeconds}) LIMIT 10000)`);
}
