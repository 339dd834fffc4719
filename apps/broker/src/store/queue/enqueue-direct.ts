// The direct send statement: a batch of sends each to one member by pubkey,
// written as the send statement (enqueue.ts) writes it but for deliveries
// another instance's presence would take, which it writes queued rather than
// leased there. So it routes by the (mesh, pubkey) index alone, and its
// notices name the members whose deliveries it queued: a plan of 71 nodes
// against 119, whose executor start and end are most of a small batch's time
// in Postgres (bench/RESULTS.md, "A send statement for direct sends"), and
// whose routing is cheaper per send in a large one. The instance writes a
// batch with it when it holds a presence of every recipient, so the leases
// it gives up elsewhere are rare.
import { shapedStatement, type Slot } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";
import { BUS_CHANNEL, MAX_LEASED_ELSEWHERE, MAX_NOTIFIED_MEMBERS } from "../notify.ts";
import { PUBKEY_ROUTE_CTES } from "../routing.ts";
import { directCte, enqueuedCte, leasedPush, sendAnswers, sendsCte, WRITTEN_CTES, type SendValues } from "./send-parts.ts";

/**
 * The most sends it writes at once: as many as the send statement may lease
 * to presences elsewhere for, so that the two pick the same presences (below).
 */
export const MAX_DIRECT_BATCH = MAX_LEASED_ELSEWHERE;

export const directSendStatement = shapedStatement<SendValues, number>((slot, batchSize) => directSendSql(slot, batchSize));

// A member's pubkey is unique in its mesh, so each send has at most one
// recipient, one delivery and one lease, and its answer's lists are read by
// joins rather than aggregated. A presence elsewhere is still picked as the
// send statement picks it (an idle one first), so the same presence is
// chosen; only the lease to it is not written. The send statement allows
// one elsewhere while it notifies and its recipients number at most
// MAX_LEASED_ELSEWHERE, which a direct batch never passes.
function directSendSql(slot: Slot<SendValues>, batchSize: number): SQL {
  const notify = slot("notify");
  return sql`
    WITH ${sendsCte(slot, batchSize)},
    ${PUBKEY_ROUTE_CTES},
    ${WRITTEN_CTES},
    ${directCte(slot, sql`${notify}`)},
    ${enqueuedCte(slot, sql`dl.instance_id = ${slot("instanceId")}`)},
    -- Queued, or held for a waiting request (attempt 0): the other instances
    -- must hear of it, as queuedWork in services/bus.ts says it, split as
    -- publish there splits it: MAX_NOTIFIED_MEMBERS to a notice.
    notified AS (
      SELECT pg_notify(${BUS_CHANNEL}, json_build_object('members', to_json(queued.ids[i : i + ${MAX_NOTIFIED_MEMBERS - 1}]))::text)
      FROM (SELECT array_agg(DISTINCT recipient_member_id) AS ids FROM enqueued WHERE ${notify} AND attempt = 0) queued,
           generate_series(1, cardinality(queued.ids), ${MAX_NOTIFIED_MEMBERS}) i
    )
    ${sendAnswers(
      sql`CASE WHEN rc.member_id IS NULL THEN '[]' ELSE json_build_array(rc.member_id)::text END AS recipients,
           CASE WHEN e.attempt = 1 THEN json_build_array(${leasedPush("e")}) ELSE '[]' END::text AS leased,
           '[]' AS "leasedElsewhere",
           CASE WHEN rc.queue_full THEN 1 ELSE 0 END AS "fullQueues"`,
      sql`LEFT JOIN recipients rc ON rc.idx = r.idx
    LEFT JOIN enqueued e ON e.message_id = i.id`,
    )}`;
}
