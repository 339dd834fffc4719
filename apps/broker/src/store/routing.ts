// Who a send goes to. A send names its recipients by a target spec: a pubkey
// → that member (the sender too, if it names itself); * → every other member;
// #channel → the other members that joined it; tag:x → the other members
// carrying x. Revoked members receive nothing; members whose queue is full
// (members.queue_full_at, store/queue/full-queues.ts) are routed to, and
// marked so, for the send statement to write them nothing.
import type { Executor } from "@switchboard/db";
import { sql } from "drizzle-orm";
import { jsonParam } from "./sql.ts";

// A pubkey: one probe of the (mesh, pubkey) index, not a scan of the mesh.
const PUBKEY_RECIPIENT = `
      SELECT q.idx, mb.id AS member_id, q.priority, mb.queue_full_at IS NOT NULL AS queue_full
      FROM q JOIN members mb ON mb.mesh_id = q."meshId" AND mb.pubkey = q."targetSpec" AND mb.revoked_at IS NULL`;
// One probe of the same index says both: null when no such member, else whether its queue is full.
const PUBKEY_REACH = `(
          SELECT mb.queue_full_at IS NOT NULL FROM members mb
          WHERE mb.mesh_id = q."meshId" AND mb.pubkey = q."targetSpec" AND mb.revoked_at IS NULL)`;

/**
 * Given a CTE `q` of sends (idx, "meshId", "senderId", "targetSpec", priority),
 * the CTEs `recipients` (idx, member_id, priority, queue_full) and `routed`
 * (q's columns, `known`: false for a pubkey outside the mesh or revoked, or a
 * channel that no member who is not revoked joined, and for a pubkey whose
 * member's queue is full, which `queue_full` then says). The durable send
 * statement and the ephemeral lookup both route with these.
 */
export const ROUTE_CTES = sql.raw(`
    recipients AS (${PUBKEY_RECIPIENT}
      WHERE q."targetSpec" <> '*' AND q."targetSpec" NOT LIKE 'tag:%' AND q."targetSpec" NOT LIKE '#%'
      UNION ALL
      SELECT q.idx, mb.id AS member_id, q.priority, mb.queue_full_at IS NOT NULL
      FROM q JOIN members mb ON mb.mesh_id = q."meshId" AND mb.revoked_at IS NULL AND mb.id <> q."senderId"
      -- The first condition names the sends alone, so other sends never reach the members.
      WHERE (q."targetSpec" = '*' OR q."targetSpec" LIKE 'tag:%')
        AND (q."targetSpec" = '*' OR substr(q."targetSpec", 5) = ANY (mb.tags))
      UNION ALL
      -- A channel: its members by the channel's key, not every member of every
      -- mesh tested against the channel (a generic plan hashed both tables),
      -- each member probed by its id (OFFSET 0 keeps it a probe): joined, on
      -- statistics in which one channel has most members, a send to any
      -- channel merged its few with a walk of every member.
      SELECT q.idx, mb.id AS member_id, q.priority, mb.queue_full_at IS NOT NULL
      FROM q JOIN channel_members c ON c.mesh_id = q."meshId" AND c.channel = q."targetSpec"
      CROSS JOIN LATERAL (SELECT id, mesh_id, revoked_at, queue_full_at FROM members WHERE id = c.member_id OFFSET 0) mb
      WHERE q."targetSpec" LIKE '#%' AND mb.mesh_id = q."meshId" AND mb.revoked_at IS NULL AND mb.id <> q."senderId"
    ),
    -- reach: null for a target that names nothing, else whether a full queue holds the send back.
    -- A send held back is not known, so the CTEs that test known write it nothing and are planned
    -- as before (a test of its own halved the estimates of the rows written, and their joins became
    -- nested loops over the statement's CTEs).
    routed AS (
      SELECT x.*, coalesce(NOT x.reach, false) AS known, coalesce(x.reach, false) AS queue_full FROM (
        SELECT q.*, CASE
          WHEN q."targetSpec" ~ '^[0-9a-f]{64}$' THEN ${PUBKEY_REACH}
          -- Joined by a member not revoked: a revoked member's channels are as unknown as its pubkey.
          WHEN q."targetSpec" LIKE '#%' THEN CASE WHEN EXISTS (
            SELECT 1 FROM channel_members c
            CROSS JOIN LATERAL (SELECT revoked_at FROM members WHERE id = c.member_id OFFSET 0) mb
            WHERE c.mesh_id = q."meshId" AND c.channel = q."targetSpec" AND mb.revoked_at IS NULL) THEN false END
          ELSE false
        END AS reach
        -- OFFSET 0: pulled up, the probe would run once for each of the two columns it makes.
        FROM q OFFSET 0
      ) x
    )`);

/** The same CTEs for sends whose every target spec is a pubkey: its arm of each alone. */
export const PUBKEY_ROUTE_CTES = sql.raw(`
    recipients AS (${PUBKEY_RECIPIENT}
    ),
    routed AS (
      SELECT x.*, coalesce(NOT x.reach, false) AS known, coalesce(x.reach, false) AS queue_full
      FROM (SELECT q.*, ${PUBKEY_REACH} AS reach FROM q OFFSET 0) x
    )`);

export interface Route {
  known: boolean;
  recipientIds: string[];
}

/** Routes one send without writing anything (an ephemeral send: a full queue does not hold it back, as nothing is queued). */
export async function routeSend(
  db: Executor,
  send: { meshId: string; senderId: string; targetSpec: string; priority: string },
): Promise<Route> {
  const { meshId, senderId, targetSpec, priority } = send;
  const rows = await db.rows<{ known: boolean; recipients: string }>(sql`
    WITH q AS (
      SELECT * FROM jsonb_to_recordset(${jsonParam([{ idx: 0, meshId, senderId, targetSpec, priority }])})
        AS q(idx int, "meshId" uuid, "senderId" uuid, "targetSpec" text, priority text)
      LIMIT 1
    ),
    ${ROUTE_CTES}
    SELECT r.known OR r.queue_full AS known, coalesce((SELECT json_agg(x.member_id) FROM recipients x), '[]')::text AS recipients
    FROM routed r`);
  const row = rows[0];
  return { known: row?.known ?? false, recipientIds: row ? (JSON.parse(row.recipients) as string[]) : [] };
}
