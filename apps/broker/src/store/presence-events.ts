// What a presence event says about a presence, read from its row: events
// travel between instances as ids only, and each instance reads the rows
// for the meshes it has subscribers in.
import type { Executor } from "@switchboard/db";
import type { Status } from "@switchboard/protocol";
import { sql } from "drizzle-orm";
import { listLivePeers } from "./directory.ts";
import { uuidArray } from "./sql.ts";

export interface PresenceRow {
  presenceId: string;
  meshId: string;
  pubkey: string;
  displayName: string;
  sessionId: string;
  status: Status;
  /** Ended already (a `joined` or `status` read late, after its `left`). */
  gone: boolean;
}

const COLUMNS = sql`p.id::text AS "presenceId", p.mesh_id::text AS "meshId", mb.pubkey, p.display_name AS "displayName",
  p.session_id AS "sessionId", p.status, p.disconnected_at IS NOT NULL AS gone`;

/** These presences, live or not, if they belong to one of these meshes. */
export function presenceRows(db: Executor, presenceIds: readonly string[], meshIds: readonly string[]): Promise<PresenceRow[]> {
  if (presenceIds.length === 0 || meshIds.length === 0) return Promise.resolve([]);
  return db.rows<PresenceRow>(sql`
    SELECT ${COLUMNS}
    FROM presences p JOIN members mb ON mb.id = p.member_id
    WHERE p.id = ANY (${uuidArray(presenceIds)}) AND p.mesh_id = ANY (${uuidArray(meshIds)})`);
}

/** The live presences of a mesh: a subscriber's first snapshot, read as the admin view lists them. */
export async function livePresenceRows(db: Executor, meshId: string): Promise<PresenceRow[]> {
  const live = await listLivePeers(db, meshId);
  return live.map((p) => ({
    presenceId: p.presenceId,
    meshId,
    pubkey: p.pubkey,
    displayName: p.displayName,
    sessionId: p.sessionId,
    status: p.status,
    gone: false,
  }));
}
