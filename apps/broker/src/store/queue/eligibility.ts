// Which messages a presence may receive now, by its status (docs/protocol.md,
// "Status and priority"):
// one table, and the SQL the claim and the ephemeral fan-out filter with is
// generated from it, so the two cannot drift apart.
import type { Priority, Status } from "@switchboard/protocol";
import { sql, type SQL } from "drizzle-orm";

export const RECEIVABLE: Readonly<Record<Status, readonly Priority[]>> = {
  idle: ["now", "next", "low"],
  working: ["now"],
  dnd: ["now"],
};

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
