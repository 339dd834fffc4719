// Enqueue: a batch of sends becomes messages and their deliveries, in one
// statement, so one commit (and one round trip) makes every message and
// delivery of the batch durable together. A delivery whose recipient has a
// presence that may take it now is written already leased to that presence,
// so its push needs no claim: one on the sending instance (but those it
// knows cannot take pushes now), else one on another instance, which the
// statement's NOTIFY names it to; one that would overtake older queued work
// it could also take stays queued. A reply to a
// message whose sender is waiting for it (reply_wait_until still ahead) is
// written leased to that message's id until then instead, so only the
// waiting request takes it (reply.ts takeReplies); the lease sweeper or the
// waiter's end returns it to the queue.
import { shapedStatement, type Executor, type Slot } from "@switchboard/db";
import type { Priority } from "@switchboard/protocol";
import { sql, type SQL } from "drizzle-orm";
import { BUS_CHANNEL, MAX_LEASED_ELSEWHERE, MAX_NOTIFIED_ENTRIES, MAX_NOTIFIED_MEMBERS, MAX_NOTIFIED_PUSHES } from "../notify.ts";
import { ROUTE_CTES } from "../routing.ts";
import { batchLimit, batchShape, isoTime, jsonText, uuidArrayOf } from "../sql.ts";
import { queueReads, receivable, receivesOnSockets } from "./eligibility.ts";

export interface NewMessage {
  id: string;
  meshId: string;
  senderId: string;
  /** The sender's idempotency key (a send's `id`), or null. */
  clientId: string | null;
  targetSpec: string;
  priority: Priority;
  nonce: string;
  ciphertext: string;
  replyTo: string | null;
  ttlSeconds: number;
  /** Set when the sender waits this long for a reply (HTTP ?wait=S): replies are held for it. */
  replyWaitSeconds: number | null;
}

export interface EnqueuedSend {
  idx: number;
  /** False for a direct pubkey outside the mesh (or revoked) or a channel no unrevoked member joined: nothing was written. */
  known: boolean;
  /** False when the sender was revoked before this statement: nothing was written. */
  senderLive: boolean;
  inserted: boolean;
  /** For a retried client id: the message stored by an earlier statement. */
  priorId: string | null;
  priorRecipients: number;
  /** JSON array of the recipients' member ids. */
  recipients: string;
  /** JSON array of the deliveries written leased to presences of this instance: [{memberId, presenceId, seq}]. */
  leased: string;
  /** JSON array of the recipients whose deliveries were written leased to a presence on another instance. */
  leasedElsewhere: string;
  /** When the messages were stored (ISO-8601 UTC), the same for the whole batch. */
  createdAt: string;
  /** How many notices the statement sent the other instances (selected so that the notifying CTE runs). */
  notified: number;
}

/** Where the sending instance can push at once: its own presences, but for those that cannot take pushes now. */
export interface LocalHolders {
  instanceId: string;
  /** Presences of the instance that are backed up or whose push window is full. */
  unavailable: string[];
  leaseSeconds: number;
  /**
   * Whether to tell the other instances of the deliveries written queued,
   * and of those written leased to their presences, by a NOTIFY in this very
   * statement (it goes out with its commit: no second round trip, no second
   * commit). Without it nothing is leased to another instance's presences.
   */
  notify: boolean;
}

/** An entry of EnqueuedSend.leased, from a delivery row `d`. */
export const leasedPush = (d: string): SQL =>
  sql.raw(`json_build_object('memberId', ${d}.recipient_member_id, 'presenceId', ${d}.lease_presence_id, 'seq', ${d}.id::float8)`);

export async function enqueueSends(db: Executor, messages: NewMessage[], holders: LocalHolders): Promise<EnqueuedSend[]> {
  if (messages.length === 0) return [];
  return db.rows<EnqueuedSend>(bindSends(messages, holders, messages.length));
}

/**
 * Runs the send statement of batches of `batchSize` with no sends in it: it
 * writes nothing, and leaves its connection with the statement parsed and
 * planned (prepared statements are kept per connection; planning this one
 * takes milliseconds). Each batch size up to the next power of two is a
 * statement of its own (batchLimit).
 */
export async function prepareEnqueue(db: Executor, holders: LocalHolders, batchSize: number): Promise<void> {
  await db.rows(bindSends([], holders, batchSize));
}

/** What a send statement binds at each call. */
interface SendValues {
  /** JSON text: the sends, each with its index in the batch. */
  messages: string;
  instanceId: string;
  /** JSON text: LocalHolders.unavailable. */
  unavailable: string;
  leaseSeconds: number;
  notify: boolean;
}

const bindSends = (messages: NewMessage[], holders: LocalHolders, batchSize: number) =>
  sendStatement(
    {
      messages: JSON.stringify(messages.map((m, idx) => ({ ...m, idx }))),
      instanceId: holders.instanceId,
      unavailable: JSON.stringify(holders.unavailable),
      leaseSeconds: holders.leaseSeconds,
      notify: holders.notify,
    },
    batchShape(batchSize),
  );

// Data-modifying CTEs run to completion whether or not the final SELECT reads
// them. (No audit row per send: the messages table itself is that record.)
// A retried client id inserts nothing (ON CONFLICT) and reports the message
// an earlier statement stored; a repeat within this very batch sees
// no prior row (one snapshot) and is matched to its sibling by the caller.
// The JSON input is capped with a LIMIT (batchLimit) so the planner knows
// it holds few rows and probes indexes instead of hashing whole tables, yet
// not so few that it joins this statement's own CTEs by nested loops. Lists
// per send are aggregated once and joined by key rather than looked up by a
// subquery per send, which would scan a CTE whole for every send.
const sendStatement = shapedStatement<SendValues, number>((slot, batchSize) => sendSql(slot, batchSize));

function sendSql(slot: Slot<SendValues>, batchSize: number): SQL {
  const holders = { instanceId: slot("instanceId"), notify: slot("notify"), leaseSeconds: slot("leaseSeconds") };
  const olderWork = queueReads(sql`p.status`, sql`d.priority`);
  const noneQueued = (gate: SQL) => sql`NOT EXISTS (
        SELECT 1 FROM deliveries d
        WHERE ${gate} AND d.recipient_member_id = r.member_id AND d.state = 'queued' AND d.expires_at > now()
        OFFSET 0
      )`;
  return sql`
    WITH q AS (
      SELECT * FROM jsonb_to_recordset(${jsonText(slot("messages"))})
        AS q(idx int, id uuid, "meshId" uuid, "senderId" uuid, "clientId" text, "targetSpec" text,
             priority text, nonce text, ciphertext text, "replyTo" uuid, "ttlSeconds" int, "replyWaitSeconds" int)
      LIMIT ${batchLimit(batchSize)}
    ),
    ${ROUTE_CTES},
    -- The sender's test is a scalar probe, not EXISTS: planned as a semi-join
    -- on a members table not analyzed yet, it made the planner expect one
    -- writable send, and join the CTEs below by nested loops (500 × 500).
    writable AS (
      SELECT r.* FROM routed r
      WHERE r.known AND (SELECT s.revoked_at IS NULL FROM members s WHERE s.id = r."senderId")
    ),
    -- Leases to presences on other instances only while the notices that name
    -- each of them (by presence and delivery) stay few.
    elsewhere AS (
      SELECT ${holders.notify} AND count(*) <= ${MAX_LEASED_ELSEWHERE} AS allowed FROM recipients
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
    ),
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
      -- live presences and read all of them for each delivery. An idle one
      -- first, as a claim picks; of those, one here.
      CROSS JOIN LATERAL (
        SELECT p.id, p.status, p.instance_id FROM (
          SELECT live.id, live.status, live.instance_id FROM presences live
          WHERE live.member_id = r.member_id AND live.disconnected_at IS NULL
          OFFSET 0
        ) p
        WHERE (CASE WHEN p.instance_id = ${holders.instanceId} THEN p.id <> ALL (${uuidArrayOf(jsonText(slot("unavailable")))})
                    ELSE (SELECT allowed FROM elsewhere) END)
          AND ${receivable(sql`p.status`, sql`r.priority`)}
        ORDER BY (p.status = 'idle') DESC, (p.instance_id = ${holders.instanceId}) DESC, p.id
        LIMIT 1
      ) p
      -- Older work it may take, by the presence's status: any queued
      -- delivery, or an urgent one through their own index, so a busy
      -- session's held messages are not read. OFFSET 0 keeps each a probe
      -- run for its row, whose status test is then made before the probe
      -- (joined, the test was made on every row the probe read).
      WHERE ${receivesOnSockets(sql`r.member_id`)} AND ${noneQueued(olderWork.every)} AND ${noneQueued(olderWork.urgent)}
    ),
    enqueued AS (
      INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at,
                              state, lease_presence_id, lease_expires_at, attempt, delivered_at)
      SELECT w.id, r.member_id, w.priority, now() + make_interval(secs => w."ttlSeconds"),
             CASE WHEN awaited.id IS NOT NULL OR dl.presence_id IS NOT NULL THEN 'leased' ELSE 'queued' END,
             coalesce(awaited.id, dl.presence_id),
             CASE WHEN awaited.id IS NOT NULL THEN awaited.until
                  WHEN dl.presence_id IS NOT NULL THEN now() + make_interval(secs => ${holders.leaseSeconds}) END,
             CASE WHEN awaited.id IS NULL AND dl.presence_id IS NOT NULL THEN 1 ELSE 0 END,
             CASE WHEN awaited.id IS NULL AND dl.presence_id IS NOT NULL THEN now() END
      FROM writable w
      JOIN inserted i ON i.id = w.id
      JOIN recipients r ON r.idx = w.idx
      LEFT JOIN direct dl ON dl.idx = w.idx AND dl.member_id = r.member_id
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
    ),
    -- attempt is 1 exactly for a delivery leased to a presence here (a push
    -- to hand out); 0 for one queued or held for a waiting request (the
    -- other instances must hear of it). The payload follows queuedWork in
    -- services/bus.ts: member ids up to MAX_NOTIFIED_MEMBERS, else their
    -- meshes, MAX_NOTIFIED_ENTRIES to a notice (a payload is under 8000 bytes).
    -- A recipient's mesh is the send's: read by a probe of the member, as
    -- any plan does it, not by a join of the sends CTE, which a plan
    -- expecting one send ran once per delivery.
    queued_work AS (
      SELECT e.recipient_member_id, mb.mesh_id AS "meshId"
      FROM enqueued e JOIN members mb ON mb.id = e.recipient_member_id
      WHERE ${holders.notify} AND e.attempt = 0
    ),
    queued_members AS (
      SELECT count(DISTINCT recipient_member_id) AS n, json_agg(DISTINCT recipient_member_id) AS ids FROM queued_work
    ),
    -- Deliveries leased to presences on other instances, for the notices that
    -- name them to their instance (services/bus.ts), MAX_NOTIFIED_PUSHES to
    -- a notice, in the order of their ids: an instance pushes them in the
    -- order its notices come. A presence is its instance's alone.
    remote_holders AS (
      SELECT DISTINCT presence_id, instance_id FROM direct WHERE instance_id <> ${holders.instanceId}
    ),
    leased_elsewhere AS (
      SELECT e.id, e.message_id, e.recipient_member_id, e.lease_presence_id, h.instance_id
      FROM enqueued e JOIN remote_holders h ON h.presence_id = e.lease_presence_id
      WHERE e.attempt = 1
    ),
    notices AS (
      SELECT json_build_object('members', ids)::text AS payload
      FROM queued_members WHERE n BETWEEN 1 AND ${MAX_NOTIFIED_MEMBERS}
      UNION ALL
      SELECT json_build_object('meshes', json_agg(m."meshId"))::text
      FROM (SELECT d."meshId", row_number() OVER (ORDER BY d."meshId") AS n FROM (SELECT DISTINCT "meshId" FROM queued_work) d) m
      WHERE (SELECT n FROM queued_members) > ${MAX_NOTIFIED_MEMBERS}
      GROUP BY (m.n - 1) / ${MAX_NOTIFIED_ENTRIES}
      UNION ALL
      (SELECT json_build_object('leased', json_build_object(
                'instance', instance_id, 'pushes', json_agg(json_build_array(lease_presence_id, id::float8) ORDER BY id)))::text
       FROM (SELECT *, (row_number() OVER (PARTITION BY instance_id ORDER BY id) - 1) / ${MAX_NOTIFIED_PUSHES} AS part
             FROM leased_elsewhere) x
       GROUP BY instance_id, part
       ORDER BY instance_id, part)
    ),
    notified AS (
      SELECT pg_notify(${BUS_CHANNEL}, payload) FROM notices
    ),
    -- Lists per send, aggregated once and joined by key: a subquery per send
    -- over these CTEs would scan them whole for every send of the batch.
    recipient_lists AS (
      SELECT idx, json_agg(member_id) AS ids FROM recipients GROUP BY idx
    ),
    leased_lists AS (
      SELECT e.message_id,
             json_agg(${leasedPush("e")}) AS pushes
      FROM enqueued e
      WHERE e.attempt = 1 AND e.lease_presence_id NOT IN (SELECT presence_id FROM remote_holders)
      GROUP BY e.message_id
    ),
    elsewhere_lists AS (
      SELECT message_id, json_agg(recipient_member_id) AS ids FROM leased_elsewhere GROUP BY message_id
    )
    SELECT r.idx, r.known, w.id IS NOT NULL AS "senderLive", i.id IS NOT NULL AS inserted, prior.id AS "priorId",
           coalesce((SELECT count(*) FROM deliveries d WHERE d.message_id = prior.id), 0)::int AS "priorRecipients",
           coalesce(rl.ids, '[]')::text AS recipients,
           coalesce(ll.pushes, '[]')::text AS leased,
           coalesce(el.ids, '[]')::text AS "leasedElsewhere",
           ${isoTime("now()")} AS "createdAt",
           (SELECT count(*) FROM notified)::int AS notified
    FROM routed r
    LEFT JOIN writable w ON w.idx = r.idx
    LEFT JOIN inserted i ON i.id = r.id
    LEFT JOIN recipient_lists rl ON rl.idx = r.idx
    LEFT JOIN leased_lists ll ON ll.message_id = i.id
    LEFT JOIN elsewhere_lists el ON el.message_id = i.id
    -- A lateral probe of the (sender, client id) index: a plain join could
    -- hash the whole messages table under a generic plan.
    LEFT JOIN LATERAL (
      SELECT m.id FROM messages m
      WHERE i.id IS NULL AND w.id IS NOT NULL AND m.sender_member_id = r."senderId" AND m.client_id = r."clientId"
      LIMIT 1
    ) prior ON true
    ORDER BY r.idx`;
}
