// Broker instances and their leases. An instance that stops renewing (it was
// killed) is reaped by the others: its presences end, its leases return.
import { applicationNameOf, type Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { jsonParam } from "./sql.ts";

/** Also makes a reaped instance live again, with a fresh lease. */
export async function registerInstance(db: Executor, id: string, hostname: string, pid: number, leaseSeconds: number) {
  await db.rows(sql`
    INSERT INTO broker_instances (id, hostname, pid, lease_expires_at)
    VALUES (${id}, ${hostname}, ${pid}, now() + make_interval(secs => ${leaseSeconds}))
    ON CONFLICT (id) DO UPDATE SET stopped_at = NULL, lease_expires_at = excluded.lease_expires_at`);
}

/** False when the lease had run out and another instance reaped this one. */
export async function renewInstance(db: Executor, id: string, leaseSeconds: number): Promise<boolean> {
  const rows = await db.rows(sql`
    UPDATE broker_instances SET lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
    WHERE id = ${id} AND stopped_at IS NULL
    RETURNING id`);
  return rows.length === 1;
}

export async function markInstanceStopped(db: Executor, id: string): Promise<void> {
  await db.rows(sql`UPDATE broker_instances SET stopped_at = now() WHERE id = ${id}`);
}

/**
 * Claims the instances whose lease ran out (each reaper gets a disjoint set),
 * never the reaper, and only while the reaper's own lease holds by the
 * database's clock as the statement runs: a reap held up past it (its
 * connection stalled) would take instances that could not renew for the same
 * reason, and the reaper itself.
 */
export async function takeExpiredInstances(tx: Executor, reaper: string): Promise<string[]> {
  const rows = await tx.rows<{ id: string }>(sql`
    UPDATE broker_instances SET stopped_at = now()
    WHERE id IN (
      SELECT id FROM broker_instances
      WHERE stopped_at IS NULL AND lease_expires_at < now() AND id <> ${reaper}
      FOR UPDATE SKIP LOCKED
    )
    AND EXISTS (
      SELECT 1 FROM broker_instances me
      WHERE me.id = ${reaper} AND me.stopped_at IS NULL AND me.lease_expires_at >= now()
    )
    RETURNING id`);
  return rows.map((r) => r.id);
}

/** Live presences of instances that are stopped: left behind by a crash. */
export async function orphanedPresenceIds(tx: Executor, exceptInstance: string): Promise<string[]> {
  const rows = await tx.rows<{ id: string }>(sql`
    SELECT p.id FROM presences p
    WHERE p.disconnected_at IS NULL AND p.instance_id <> ${exceptInstance}
      AND NOT EXISTS (
        SELECT 1 FROM broker_instances i WHERE i.id = p.instance_id AND i.stopped_at IS NULL)`);
  return rows.map((r) => r.id);
}

/** For a process that owns the database alone (embedded): whatever else is marked live was left by a crash. */
export async function markAllInstancesStopped(db: Executor): Promise<void> {
  await db.rows(sql`UPDATE broker_instances SET stopped_at = now() WHERE stopped_at IS NULL`);
}

/**
 * Ends the sessions of these (reaped) instances, found by the name each
 * instance gives its connections; returns how many. Postgres only: the
 * embedded database has no sessions of other processes.
 */
export async function terminateSessionsOf(db: Executor, instanceIds: readonly string[]): Promise<number> {
  const rows = await db.rows<{ ended: number }>(sql`
    SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS ended FROM pg_stat_activity
    WHERE application_name IN (SELECT jsonb_array_elements_text(${jsonParam(instanceIds.map(applicationNameOf))}))
      AND datname = current_database() AND pid <> pg_backend_pid()`);
  return rows[0]?.ended ?? 0;
}
