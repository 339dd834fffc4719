// What admitting a hello reads and writes. All of it runs in one transaction
// (see services/hello.ts), so a refused hello leaves nothing behind.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { UUID } from "./sql.ts";

export interface HelloMember {
  meshId: string;
  memberId: string;
  displayName: string;
  role: "member" | "observer";
  revoked: boolean;
}

export async function findHelloMember(tx: Executor, meshRef: string, pubkey: string): Promise<HelloMember | null> {
  const meshMatch = UUID.test(meshRef) ? sql`m.id = ${meshRef}::uuid` : sql`m.slug = ${meshRef}`;
  const rows = await tx.rows<HelloMember>(sql`
    SELECT m.id AS "meshId", mb.id AS "memberId", mb.display_name AS "displayName", mb.role,
           mb.revoked_at IS NOT NULL AS revoked
    FROM meshes m JOIN members mb ON mb.mesh_id = m.id AND mb.pubkey = ${pubkey}
    WHERE ${meshMatch}`);
  return rows[0] ?? null;
}

/** Milliseconds between a signed timestamp and the database's clock, the one clock every instance shares. */
export async function skewFromDatabaseClock(tx: Executor, timestampMs: number): Promise<number> {
  const rows = await tx.rows<{ skewMs: number }>(sql`
    SELECT abs(extract(epoch FROM clock_timestamp()) * 1000 - ${timestampMs}::float8)::float8 AS "skewMs"`);
  return rows[0]?.skewMs ?? Number.POSITIVE_INFINITY;
}

/**
 * False when this signature was accepted before (by any instance). It is kept
 * until its own timestamp plus keepMs: after that the clock window refuses it
 * anyway, by the same database clock.
 */
export async function recordHelloSignature(tx: Executor, signature: string, timestampMs: number, keepMs: number): Promise<boolean> {
  const rows = await tx.rows(sql`
    INSERT INTO hello_replays (signature, expires_at)
    VALUES (${signature}, to_timestamp((${timestampMs}::float8 + ${keepMs}::float8) / 1000))
    ON CONFLICT (signature) DO NOTHING
    RETURNING signature`);
  return rows.length === 1;
}

/** Serialises hellos into one mesh, so the capacity count is exact across instances. */
export async function lockMesh(tx: Executor, meshId: string): Promise<void> {
  await tx.rows(sql`SELECT id FROM meshes WHERE id = ${meshId} FOR NO KEY UPDATE`);
}
