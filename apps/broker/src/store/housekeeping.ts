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
