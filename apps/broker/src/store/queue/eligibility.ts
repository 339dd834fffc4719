// Which messages a recipient may receive now (docs/protocol.md, "Status and
// priority"): one table, and the SQL the claims and the ephemeral fan-out
// filter with is generated from it, so they cannot drift apart.
import { prioritySchema, type Priority, type Status } from "@switchboard/protocol";
import { sql, type SQL } from "drizzle-orm";

export const RECEIVABLE: Readonly<Record<Status, readonly Priority[]>> = {
  idle: ["now", "next", "low"],
  working: ["now"],
  dnd: ["now"],
};

/** A webhook member counts as idle: its endpoint takes every priority. */
export const WEBHOOK_STATUS: Status = "idle";

const quoted = (values: readonly string[]) => values.map((v) => `'${v}'`).join(", ");

/**
 * True when a presence whose status is the expression `status` may receive a
 * message whose priority is the expression `priority`. The table's keys and
 * values are constants of the protocol, so inlining them is safe.
 */
export function receivable(status: SQL, priority: SQL): SQL {
  const arms = Object.entries(RECEIVABLE).map(
    ([s, priorities]) => sql`WHEN ${sql.raw(`'${s}'`)} THEN ${priority} IN (${sql.raw(quoted(priorities))})`,
  );
  return sql`(CASE ${status} ${sql.join(arms, sql` `)} ELSE false END)`;
}

/** What a session that is not idle still receives; such deliveries, queued, have an index of their own (deliveries_queued_now_idx). */
export const URGENT = "now" satisfies Priority;

const EVERY_PRIORITY = Object.entries(RECEIVABLE)
  .filter(([, priorities]) => priorities.length === prioritySchema.options.length)
  .map(([status]) => status);

/**
 * True when a presence whose status is the expression `status` receives
 * every priority; any other status receives URGENT alone (status-rules.test.ts
 * holds RECEIVABLE to this). So a read of a queue for what a status may take
 * probes either the queue's index or the urgent one, and never walks a busy
 * session's held messages to find none it may take.
 */
export function receivesEveryPriority(status: SQL): SQL {
  return sql`(${status} IN (${sql.raw(quoted(EVERY_PRIORITY))}))`;
}

/**
 * The conditions of the two reads of a member's queue for a presence whose
 * status is `status`, exactly one of which is true: every queued delivery
 * (the queue's index), or the urgent ones (theirs: `priority` is compared
 * with a literal, so the index's predicate is seen to hold).
 */
export function queueReads(status: SQL, priority: SQL): { every: SQL; urgent: SQL } {
  return {
    every: receivesEveryPriority(status),
    urgent: sql`NOT ${receivesEveryPriority(status)} AND ${priority} = ${sql.raw(`'${URGENT}'`)}`,
  };
}

/**
 * True when the member named by the expression `memberId` has a queued
 * delivery `d` not past its expiry that `gate` lets through. The expiry is
 * tested outside the probe (OFFSET 0): tested in it, the probe could be
 * planned as a walk of the expiry sweep's index (every queued delivery by its
 * expiry) testing each entry's member, which statistics that give one member
 * away the whole backlog make look cheap; every send then read that backlog
 * (apps/broker/test/backlog-plans.test.ts).
 */
export function hasQueued(memberId: SQL, gate: SQL = sql`true`): SQL {
  return sql`EXISTS (
        SELECT 1 FROM (
          SELECT d.expires_at FROM deliveries d
          WHERE ${gate} AND d.recipient_member_id = ${memberId} AND d.state = 'queued'
          OFFSET 0
        ) owed
        WHERE owed.expires_at > now()
      )`;
}

/**
 * True when the member named by the expression `memberId` receives on its
 * sockets: a member with a webhook receives only there (docs/http.md).
 * `memberId` must name its table: inside this subquery a bare `member_id`
 * is the webhook's own, and the test becomes "no webhook exists anywhere".
 */
export function receivesOnSockets(memberId: SQL): SQL {
  return sql`NOT EXISTS (SELECT 1 FROM webhooks wh WHERE wh.member_id = ${memberId})`;
}
