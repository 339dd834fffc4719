// The bound on a channel's history (HISTORY_MAX_PER_CHANNEL): of a channel's
// messages (mesh_id, target_spec), those beyond its newest N by insertion
// order (seq, the order history pages read) go once settled (settled.ts)
// and older than the settled retention, as a direct message would: until
// then a retried send with the same id is still answered as a duplicate.
// Each tick visits a run of channels after the one the last tick ended at,
// all through messages_channel_history_idx (mesh_id, target_spec, seq):
//   - the next channel is one probe past the last (a loose index scan);
//   - its newest N are read backwards to find the N-th newest's seq, the
//     most a visit reads, hence fewer channels a tick the larger N is;
//   - what is below both that seq and the seq of the newest channel message
//     past the settled retention is read oldest first, so a visit does not
//     read the messages sent within the settled retention. That seq is one
//     probe of messages_channel_created_idx for its created_at and one for
//     the ties (a group commit's messages share a created_at); as one
//     ORDER BY created_at, seq, a plan made while the table was empty
//     walked the history index instead. The created_at test stays, for
//     messages whose seq and created_at disagree (their transactions
//     overlapped): one passed over by the seq bound goes at a later tick,
//     once a message sent after it is past the settled retention.
// Messages still owed are read again at every visit: a recipient's queue
// bound (MAX_QUEUED_PER_MEMBER) keeps those few.
import { sql, type SQL } from "drizzle-orm";
import { settled } from "./settled.ts";

/** A channel as messages store it: its mesh and its `#name`. */
export interface ChannelKey {
  meshId: string;
  channel: string;
}

/** Index entries a tick may read to find its channels' N-th newest messages, and the most channels it visits. */
const NEWEST_READS_PER_TICK = 100_000;
const MAX_CHANNELS_PER_TICK = 1000;

/** How many channels one tick visits under a bound of `maxPerChannel`. */
function channelsPerTick(maxPerChannel: number): number {
  return Math.min(MAX_CHANNELS_PER_TICK, Math.max(1, Math.floor(NEWEST_READS_PER_TICK / maxPerChannel)));
}

/** What the prune's statement adds for the bound: its CTEs and the columns of its answer. */
export interface HistoryBound {
  /**
   * Two CTEs for a `WITH RECURSIVE` list: `visited` (mesh_id, target_spec,
   * n), the channels this tick visits, numbered from 1; `bounded` (id), at
   * most `limit` of their messages beyond the bound, settled and past the
   * settled retention, locked (rows others hold are skipped, as the walks of
   * prune.ts skip them).
   */
  ctes: SQL;
  /** "boundedTaken", and "lastMesh" and "lastChannel": the last channel visited when the tick visited its number of them. */
  columns: SQL;
}

export function historyBound(maxPerChannel: number, settledSeconds: number, after: ChannelKey | null, limit: number): HistoryBound {
  const visits = channelsPerTick(maxPerChannel);
  const start = after === null ? sql`` : sql`AND (ch.mesh_id, ch.target_spec) > (${after.meshId}::uuid, ${after.channel}::text)`;
  const cutoff = sql`now() - make_interval(secs => ${settledSeconds})`;
  const ctes = sql`
  visited (mesh_id, target_spec, n) AS (
    (SELECT ch.mesh_id, ch.target_spec, 1 FROM messages ch
     WHERE ch.target_spec LIKE '#%' ${start}
     ORDER BY ch.mesh_id, ch.target_spec LIMIT 1)
    UNION ALL
    SELECT next.mesh_id, next.target_spec, v.n + 1 FROM visited v CROSS JOIN LATERAL (
      SELECT ch.mesh_id, ch.target_spec FROM messages ch
      WHERE ch.target_spec LIKE '#%' AND (ch.mesh_id, ch.target_spec) > (v.mesh_id, v.target_spec)
      ORDER BY ch.mesh_id, ch.target_spec LIMIT 1) next
    WHERE v.n < ${visits}
  ),
  bounded AS (
    SELECT b.id FROM visited v CROSS JOIN LATERAL (
      SELECT m.id FROM messages m
      WHERE m.mesh_id = v.mesh_id AND m.target_spec = v.target_spec AND m.target_spec LIKE '#%'
        AND m.seq < (SELECT k.seq FROM messages k
                     WHERE k.mesh_id = v.mesh_id AND k.target_spec = v.target_spec AND k.target_spec LIKE '#%'
                     ORDER BY k.seq DESC OFFSET ${maxPerChannel - 1} LIMIT 1)
        AND m.seq <= (SELECT max(o.seq) FROM messages o
                      WHERE o.target_spec LIKE '#%'
                        AND o.created_at = (SELECT max(p.created_at) FROM messages p
                                            WHERE p.target_spec LIKE '#%' AND p.created_at < ${cutoff}))
        AND m.created_at < ${cutoff}
        AND ${settled(settledSeconds)}
      ORDER BY m.seq
      LIMIT ${limit}
      FOR UPDATE OF m SKIP LOCKED) b
    LIMIT ${limit}
  )`;
  const columns = sql`
    (SELECT count(*)::int FROM bounded) AS "boundedTaken",
    (SELECT v.mesh_id::text FROM visited v WHERE v.n = ${visits}) AS "lastMesh",
    (SELECT v.target_spec FROM visited v WHERE v.n = ${visits}) AS "lastChannel"`;
  return { ctes, columns };
}
