// The parts both send statements share (enqueue.ts, enqueue-direct.ts): the
// sends as rows, the sender's test, the messages' insert, the pick of a
// recipient's presence, the deliveries' insert and the answer per send. Each
// keeps the form a plan test holds it to (apps/broker/test/pool-plans.test.ts,
// enqueue-fresh-plan.test.ts), so both statements are planned alike.
import type { Slot } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";
import { batchLimit, isoTime, jsonText, uuidArrayOf } from "../sql.ts";
import { hasQueued, queueReads, receivable, receivesOnSockets } from "./eligibility.ts";
import { deliveryCount } from "./message-deliveries.ts";

/** What a send statement binds at each call. */
export interface SendValues {
  /** JSON text: the sends, each with its index in the batch. */
  messages: string;
  instanceId: string;
  /** JSON text: LocalHolders.unavailable. */
  unavailable: string;
  leaseSeconds: number;
  notify: boolean;
}

/** An entry of EnqueuedSend.leased, from a delivery row `d`. */
export const leasedPush = (d: string): SQL =>
  sql.raw(`json_build_object('memberId', ${d}.recipient_member_id, 'presenceId', ${d}.lease_presence_id, 'seq', ${d}.id::float8)`);

// The JSON input is capped with a LIMIT (batchLimit) so the planner knows
// it holds few rows and probes indexes instead of hashing whole tables, yet
// not so few that it joins the statement's own CTEs by nested loops. It is
// read as json, not jsonb: json_to_recordset converts the fields as it
// parses, where jsonb first builds the whole value, ciphertexts and all
// (bench/RESULTS.md, "Large batches by the direct statement, and the sends
// read as json").
/** The CTE `q`: the batch's sends as rows. */
export const sendsCte = (slot: Slot<SendValues>, batchSize: number): SQL => sql`
    q AS (
      SELECT * FROM json_to_recordset(${jsonText(slot("messages"), "json")})
        AS q(idx int, id uuid, "meshId" uuid, "senderId" uuid, "clientId" text, "targetSpec" text,
             priority text, nonce text, ciphertext text, "replyTo" uuid, "ttlSeconds" int, "replyWaitSeconds" int)
      LIMIT ${batchLimit(batchSize)}
    )`;

// A retried client id inserts nothing (ON CONFLICT) and reports the message
// an earlier statement stored; a repeat within this very batch sees no
// prior row (one snapshot) and is matched to its sibling by the caller.
/** The CTEs `writable` (the routed sends whose sender is not revoked) and `inserted` (their messages). */
export const WRITTEN_CTES = sql.raw(`
    -- The sender's test is a scalar probe, not EXISTS: planned as a semi-join
    -- on a members table not analyzed yet, it made the planner expect one
    -- writable send, and join the CTEs below by nested loops (500 × 500).
    writable AS (
      SELECT r.* FROM routed r
      WHERE r.known AND (SELECT s.revoked_at IS NULL FROM members s WHERE s.id = r."senderId")
    ),
    inserted AS (
      INSERT INTO messages (id, mesh_id, sender_member_id, client_id, target_spec, priority, nonce, ciphertext,
                            reply_to, expires_at, reply_wait_until)
      SELECT id, "meshId", "senderId", "clientId", "targetSpec", priority, nonce, ciphertext, "replyTo",
             now() + make_interval(secs => "ttlSeconds"), now() + make_interval(secs => "replyWaitSeconds")
      FROM writable
      ORDER BY idx
      ON CONFLICT (sender_member_id, client_id) DO NOTHING
      RETURNING id
    )`);

/**
 * The CTE `direct`: for each recipient that may take its delivery now, the
 * presence to lease it to (idx, member_id, presence_id, instance_id), picked
 * as a claim picks: an idle one first, of those one on the sending instance,
 * then one of the instance that renewed its lease last; none of an instance
 * whose lease ran out or that stopped.
 * `remote` says whether a presence on another instance may be picked.
 */
export function directCte(slot: Slot<SendValues>, remote: SQL): SQL {
  const instanceId = slot("instanceId");
  const olderWork = queueReads(sql`p.status`, sql`d.priority`);
  const noneQueued = (gate: SQL) => sql`NOT ${hasQueued(sql`r.member_id`, gate)}`;
  return sql`
    -- Driven by the recipients, one index probe each: a join of this
    -- statement's own CTEs is planned for a handful of rows (a generic plan cannot know
    -- the batch), which for a batch of hundreds multiplies into millions.
    -- MATERIALIZED: inlined into the join below, these probes ran again for
    -- every recipient of a send to many (a broadcast to 200: 40,000 of them).
    direct AS MATERIALIZED (
      SELECT r.idx, r.member_id, p.id AS presence_id, p.instance_id
      FROM recipients r
      -- The member's live presences by the member's index alone (OFFSET 0
      -- keeps the instance's test out of the probe): planned on a presences
      -- table not analyzed yet, the probe took the index of the instance's
      -- live presences and read all of them for each delivery.
      -- Another instance's presence comes with its instance's lease, while
      -- that instance runs: one killed moments ago renews no more, and its
      -- presences stay live until it is reaped; leased there, a delivery
      -- waited for that (10 to 20 s) and came after those sent later. Its
      -- lease run out, it takes none; before, of equals, the instance that
      -- renewed last is taken. Read only for another instance's.
      CROSS JOIN LATERAL (
        SELECT p.id, p.status, p.instance_id FROM (
          SELECT live.id, live.status, live.instance_id,
                 CASE WHEN live.instance_id <> ${instanceId} THEN (
                   SELECT i.lease_expires_at FROM broker_instances i WHERE i.id = live.instance_id AND i.stopped_at IS NULL
                 ) END AS instance_lease
          FROM presences live
          WHERE live.member_id = r.member_id AND live.disconnected_at IS NULL
          OFFSET 0
        ) p
        WHERE (CASE WHEN p.instance_id = ${instanceId} THEN p.id <> ALL (${uuidArrayOf(jsonText(slot("unavailable")))})
                    ELSE ${remote} AND p.instance_lease > now() END)
          AND ${receivable(sql`p.status`, sql`r.priority`)}
        ORDER BY (p.status = 'idle') DESC, (p.instance_id = ${instanceId}) DESC, p.instance_lease DESC NULLS LAST, p.id
        LIMIT 1
      ) p
      -- Older work it may take, by the presence's status: any queued
      -- delivery, or an urgent one through their own index, so a busy
      -- session's held messages are not read. OFFSET 0 keeps each a probe
      -- run for its row, whose status test is then made before the probe
      -- (joined, the test was made on every row the probe read).
      WHERE NOT r.queue_full AND ${receivesOnSockets(sql`r.member_id`)} AND ${noneQueued(olderWork.every)} AND ${noneQueued(olderWork.urgent)}
    )`;
}

/**
 * The CTE `enqueued`: a delivery for each recipient of each message
 * inserted whose queue is not full, leased to the presence `direct` picked for it where `leases`
 * (of `dl`, that row of direct) holds, or to the request a reply answers
 * while its sender waits; queued otherwise. attempt is 1 exactly for a
 * delivery leased to a presence.
 */
export function enqueuedCte(slot: Slot<SendValues>, leases: SQL): SQL {
  return sql`
    enqueued AS (
      INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at,
                              state, lease_presence_id, lease_expires_at, attempt, delivered_at)
      SELECT w.id, r.member_id, w.priority, now() + make_interval(secs => w."ttlSeconds"),
             CASE WHEN awaited.id IS NOT NULL OR dl.presence_id IS NOT NULL THEN 'leased' ELSE 'queued' END,
             coalesce(awaited.id, dl.presence_id),
             CASE WHEN awaited.id IS NOT NULL THEN awaited.until
                  WHEN dl.presence_id IS NOT NULL THEN now() + make_interval(secs => ${slot("leaseSeconds")}) END,
             CASE WHEN awaited.id IS NULL AND dl.presence_id IS NOT NULL THEN 1 ELSE 0 END,
             CASE WHEN awaited.id IS NULL AND dl.presence_id IS NOT NULL THEN now() END
      FROM writable w
      JOIN inserted i ON i.id = w.id
      JOIN recipients r ON r.idx = w.idx AND NOT r.queue_full
      LEFT JOIN direct dl ON dl.idx = w.idx AND dl.member_id = r.member_id AND ${leases}
      -- The request is found by its id alone, and its sender tested after
      -- (OFFSET 0 keeps that test out of the probe): planned on empty tables,
      -- as a new deployment's warm-up plans, the probe took the (sender,
      -- client id) index and read every message the recipient had sent.
      LEFT JOIN LATERAL (
        SELECT req.id, req.sender_member_id, req.reply_wait_until AS until FROM messages req
        WHERE req.id = w."replyTo" AND req.reply_wait_until > now()
        OFFSET 0
      ) awaited ON awaited.sender_member_id = r.member_id
      ORDER BY w.idx, r.member_id
      RETURNING id, message_id, recipient_member_id, lease_presence_id, attempt
    )`;
}

/**
 * The statement's answer, a row per send in the batch's order (EnqueuedSend):
 * `lists` are the JSON columns recipients, leased and leasedElsewhere and the
 * count "fullQueues", and
 * `joins` the relations they read, joined to `routed r`, `writable w` and
 * `inserted i`; `notified` is the CTE whose rows are the notices sent.
 */
export function sendAnswers(lists: SQL, joins: SQL): SQL {
  return sql`
    SELECT r.idx, r.known, w.id IS NOT NULL AS "senderLive", r.queue_full AS "queueFull", i.id IS NOT NULL AS inserted, prior.id AS "priorId",
           CASE WHEN prior.id IS NULL THEN 0 ELSE ${deliveryCount(sql`prior.id`)} END AS "priorRecipients",
           ${lists},
           ${isoTime("now()")} AS "createdAt",
           (SELECT count(*) FROM notified)::int AS notified
    FROM routed r
    LEFT JOIN writable w ON w.idx = r.idx
    LEFT JOIN inserted i ON i.id = r.id
    ${joins}
    -- A lateral probe of the (sender, client id) index: a plain join could
    -- hash the whole messages table under a generic plan. Made for every
    -- send not inserted, written or not: a retry is answered as its first
    -- copy even where it would now be refused (its target revoked since).
    LEFT JOIN LATERAL (
      SELECT m.id FROM messages m
      WHERE i.id IS NULL AND r."clientId" IS NOT NULL AND m.sender_member_id = r."senderId" AND m.client_id = r."clientId"
      LIMIT 1
    ) prior ON true
    ORDER BY r.idx`;
}
