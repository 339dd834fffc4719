// Prune: messages leave the database with their deliveries, owed and
// acknowledged (deleted in the same transaction: there is no foreign key to
// cascade, schema.ts) once nobody can still receive them and the retention
// has passed.
// Until then a retried send with the same id is still recognised, and the
// delivery states stay visible. A channel message is also channel history:
// it stays, acknowledged or expired, until it is older than the history
// retention (HISTORY_RETENTION_SECONDS) — or, with a bound on history
// (HISTORY_MAX_PER_CHANNEL), once it is beyond its channel's newest N and
// settled as a direct message would be (history-bound.ts).
import type { Database } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";
import { isoInstant, uuidArray } from "../sql.ts";
import { historyBound, type ChannelKey } from "./history-bound.ts";
import { settled } from "./settled.ts";

export interface Retention {
  /** How long a settled (or expired) message is kept, so a retried send stays idempotent. */
  settledSeconds: number;
  /** How long a channel message is kept for history. */
  historySeconds: number;
  /** Unset: no bound. Else a channel's settled messages beyond its newest this many go after the settled retention. */
  historyMaxPerChannel?: number | undefined;
}

/** Where each kind's walk starts: the created_at an earlier walk reached, or null for the oldest message. */
export interface PruneFrom {
  direct: string | null;
  channel: string | null;
  /** The channel after which the walk of channels over the history bound starts, or null for the first. */
  bounded: ChannelKey | null;
}

/** Walks from the oldest message of each kind, and from the first channel. */
export const FROM_THE_OLDEST: PruneFrom = { direct: null, channel: null, bounded: null };

export interface Pruned {
  removed: number;
  /** Where the next walks may start: each walk's cutoff, or the last message it took when it took its limit. */
  next: PruneFrom;
}

// Where a walk of one kind ends: its cutoff (`keptSeconds` ago), or sooner,
// at the created_at of the `scan`-th message from `from`, so that one
// statement reads at most that many messages whatever is owed among them (on
// the embedded database a statement holds the broker's one thread: a walk
// through an offline member's whole backlog held it for seconds). The next
// walk goes on from there. Where more than `scan` messages share the
// instant the walk starts at, it ends at its cutoff, so that it moves on.
// Through the kind's created_at index, with no owed check per message, and
// only over messages past the cutoff: the young ones after it are not read.
const walkEnd = (kind: (alias: string) => SQL, keptSeconds: number, from: string | null, scan: number): SQL => sql`
  LEAST(now() - make_interval(secs => ${keptSeconds}),
        (SELECT CASE WHEN e.created_at > coalesce(${from}::timestamptz, '-infinity') THEN e.created_at END
         FROM (SELECT w.created_at FROM messages w
               WHERE ${kind("w")} AND w.created_at >= coalesce(${from}::timestamptz, '-infinity')
                 AND w.created_at < now() - make_interval(secs => ${keptSeconds})
               ORDER BY w.created_at OFFSET ${scan} LIMIT 1) e))`;

// The oldest messages of one kind created at or after `from` and before the
// walk's end (`end`, a CTE holding walkEnd), through that kind's created_at
// index (schema.ts), so a tick reads the messages past their retention, not
// the table: the settled ones go (settled.ts). Those still owed stay behind a
// walk that passed them (an offline member's backlog, kept for its TTL): a
// tick that starts where the last one ended does not read them again, a walk
// from the oldest does. Rows another transaction holds (another instance's
// prune, a request's reply wait set or ended, queue/reply.ts) are skipped,
// not waited for: the walk from the oldest finds them.
const prunable = (kind: (alias: string) => SQL, end: SQL, from: string | null, retention: Retention, limit: number): SQL => sql`
  SELECT m.id, m.created_at FROM messages m
  WHERE ${kind("m")} AND m.created_at < (SELECT at FROM ${end})
    AND m.created_at >= coalesce(${from}::timestamptz, '-infinity')
    AND ${settled(retention.settledSeconds)}
  ORDER BY m.created_at
  LIMIT ${limit}
  FOR UPDATE SKIP LOCKED`;

// How far a walk read: to its end when it took fewer than its limit; else
// to the last message it took, at which the next walk starts again (`>=`:
// those created at that same instant that it did not take).
const walkedTo = (walk: SQL, end: SQL, limit: number): SQL => sql`
  CASE WHEN (SELECT count(*) FROM ${walk}) < ${limit} THEN (SELECT at FROM ${end})
       ELSE (SELECT max(created_at) FROM ${walk}) END`;

const DIRECT = (alias: string) => sql`${sql.raw(alias)}.target_spec NOT LIKE '#%'`;
const CHANNEL = (alias: string) => sql`${sql.raw(alias)}.target_spec LIKE '#%'`;

interface Walked {
  ids: string[];
  directNext: string;
  channelNext: string;
  /** With a bound on history: how many messages beyond it were taken, and the last channel visited when the tick visited its number of them. */
  boundedTaken?: number;
  lastMesh?: string | null;
  lastChannel?: string | null;
}

/**
 * Messages past their retention, at most `limit` direct and `limit` channel
 * ones, each kind walked from where `from` says, and with a bound on history
 * at most `limit` beyond it (history-bound.ts); returns how many went and
 * where the next walks may start. A message passed while owed is left to a
 * later walk from the oldest (FROM_THE_OLDEST), which the caller makes now
 * and then. Two statements in one transaction: the first locks the messages
 * and deletes their deliveries, the second their acknowledged deliveries and
 * the messages. (A message with a delivery an ack could still move, queued
 * or leased, is never taken: settled.ts.)
 */
export async function pruneMessages(
  db: Pick<Database, "transaction">,
  retention: Retention,
  limit: number,
  from: PruneFrom = FROM_THE_OLDEST,
  /** Messages of each kind one walk reads at most (walkEnd). */
  scan = 2 * limit,
): Promise<Pruned> {
  const channelKept = Math.max(retention.settledSeconds, retention.historySeconds);
  // Without a bound the statement visits no channels (HISTORY_MAX_PER_CHANNEL unset, the default).
  const max = retention.historyMaxPerChannel;
  const bound = max === undefined ? null : historyBound(max, retention.settledSeconds, from.bounded, limit);
  return db.transaction(async (tx) => {
    const [walked] = await tx.rows<Walked>(sql`
      WITH ${bound === null ? sql`` : sql`RECURSIVE`} direct_end AS MATERIALIZED (SELECT ${walkEnd(DIRECT, retention.settledSeconds, from.direct, scan)} AS at),
      channel_end AS MATERIALIZED (SELECT ${walkEnd(CHANNEL, channelKept, from.channel, scan)} AS at),
      direct AS (${prunable(DIRECT, sql`direct_end`, from.direct, retention, limit)}),
      channel AS (${prunable(CHANNEL, sql`channel_end`, from.channel, retention, limit)}),
      ${bound === null ? sql`` : sql`${bound.ctes},`}
      -- = ANY of an array: an IN of the subquery is planned as a hash join
      -- over the whole table under a generic plan. (The cast makes the
      -- subquery one array value, not a set of rows for ANY to compare with.)
      -- A message past the history retention may be beyond the bound too: UNION takes it once.
      ids AS MATERIALIZED (
        SELECT ARRAY(SELECT id FROM direct UNION ALL SELECT id FROM channel ${bound === null ? sql`` : sql`UNION SELECT id FROM bounded`}) AS ids
      ),
      -- Deliveries are written only with their message (enqueue.ts), so none
      -- can join these once their messages are locked.
      gone_deliveries AS (
        DELETE FROM deliveries WHERE message_id = ANY ((SELECT ids FROM ids)::uuid[])
      )
      SELECT ids::text[] AS ids,
             ${isoInstant(walkedTo(sql`direct`, sql`direct_end`, limit))} AS "directNext",
             ${isoInstant(walkedTo(sql`channel`, sql`channel_end`, limit))} AS "channelNext"
             ${bound === null ? sql`` : sql`, ${bound.columns}`}
      FROM ids`);
    // No row only from an executor that answers none (the plan tests' recorder): ids makes one.
    if (walked === undefined) return { removed: 0, next: from };
    const last = walked.lastMesh == null || walked.lastChannel == null ? null : { meshId: walked.lastMesh, channel: walked.lastChannel };
    // The bound's visit starts again at the same channels while a tick takes its limit; else past its last
    // channel, or at the first once every channel was visited (no last).
    const next: PruneFrom = {
      direct: walked.directNext,
      channel: walked.channelNext,
      bounded: (walked.boundedTaken ?? 0) >= limit ? from.bounded : last,
    };
    if (walked.ids.length === 0) return { removed: 0, next };
    const rows = await tx.rows<{ n: number }>(sql`
      WITH ids AS MATERIALIZED (SELECT ${uuidArray(walked.ids)} AS ids),
      gone_acked AS (
        DELETE FROM acked_deliveries WHERE message_id = ANY ((SELECT ids FROM ids)::uuid[])
      ),
      gone AS (
        DELETE FROM messages WHERE id = ANY ((SELECT ids FROM ids)::uuid[])
        RETURNING 1
      )
      SELECT count(*)::int AS n FROM gone`);
    return { removed: rows[0]?.n ?? 0, next };
  });
}
