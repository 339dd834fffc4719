import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";

/** The one channel the broker instances notify each other on. */
export const BUS_CHANNEL = "switchboard_wake";

/** Delivered to every instance's listener when the surrounding transaction commits. */
export async function notify(tx: Executor, payload: string): Promise<void> {
  await tx.rows(sql`SELECT pg_notify(${BUS_CHANNEL}, ${payload})`);
}

/**
 * Postgres refuses payloads of 8000 bytes or more: past this many member ids
 * a notification of new work names the meshes instead (services/bus.ts).
 */
export const MAX_NOTIFIED_MEMBERS = 150;

/** Entries of any other list (mesh ids, presence changes) one payload may carry: each under 80 bytes. */
export const MAX_NOTIFIED_ENTRIES = 100;

/** Deliveries leased to presences of another instance one notice names, by presence and delivery id (about 50 bytes each). */
export const MAX_NOTIFIED_PUSHES = 100;

/**
 * Deliveries one send statement may lease to presences on other instances:
 * past it, none are (a broadcast to a large mesh is queued and claimed), so
 * a statement sends at most ten notices of them.
 */
export const MAX_LEASED_ELSEWHERE = 1000;
