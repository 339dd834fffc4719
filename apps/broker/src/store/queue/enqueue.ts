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
// waiter's end returns it to the queue. A batch of sends each to a member by
// pubkey, all held here, is written by a smaller statement of the same parts
// (enqueue-direct.ts, send-parts.ts).
import { shapedStatement, type Executor, type Slot } from "@switchboard/db";
import { PUBKEY, type Priority } from "@switchboard/protocol";
import { sql, type SQL } from "drizzle-orm";
import { BUS_CHANNEL, MAX_LEASED_ELSEWHERE, MAX_NOTIFIED_ENTRIES, MAX_NOTIFIED_MEMBERS, MAX_NOTIFIED_PUSHES } from "../notify.ts";
import { ROUTE_CTES } from "../routing.ts";
import { batchShape } from "../sql.ts";
import { directSendStatement, MAX_DIRECT_BATCH } from "./enqueue-direct.ts";
import { directCte, enqueuedCte, leasedPush, sendAnswers, sendsCte, WRITTEN_CTES, type SendValues } from "./send-parts.ts";

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
  /** False for a direct pubkey outside the mesh (or revoked), a channel no unrevoked member joined, or a pubkey whose member's queue is full (queueFull): nothing was written. */
  known: boolean;
  /** False when the sender was revoked before this statement: nothing was written. */
  senderLive: boolean;
  /** True when the one member a pubkey names has a full queue: nothing was written. */
  queueFull: boolean;
  inserted: boolean;
  /** For a retried client id: the message stored by an earlier statement. */
  priorId: string | null;
  priorRecipients: number;
  /** JSON array of the recipients' member ids: those the message was written for. */
  recipients: string;
  /** Recipients whose queue was full: nothing was written for them (for a send to one member by pubkey, nothing at all: queueFull). */
  fullQueues: number;
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
  /**
   * Whether the instance holds a presence of every send's recipient. A batch
   * of sends each to one member by pubkey is then written by the direct
   * statement (enqueue-direct.ts), whose plan has 71 nodes against 119.
   * Said wrongly, nothing is lost: a delivery another instance's presence would take is
   * written queued and named to the instances, as a send to someone offline.
   * Unsaid, the batch is written by the send statement.
   */
  recipientsHere?: boolean;
}

/** Whether a batch of that size may be written by the direct statement (see LocalHolders.recipientsHere). */
const directFits = (holders: LocalHolders, batchSize: number): boolean => holders.recipientsHere === true && batchSize <= MAX_DIRECT_BATCH;

/** Whether the batch is written by the direct statement: it fits, and each send names a pubkey. */
export const writtenDirectly = (messages: readonly NewMessage[], holders: LocalHolders): boolean =>
  directFits(holders, messages.length) && messages.every((m) => PUBKEY.test(m.targetSpec));

export async function enqueueSends(db: Executor, messages: NewMessage[], holders: LocalHolders): Promise<EnqueuedSend[]> {
  if (messages.length === 0) return [];
  const statement = writtenDirectly(messages, holders) ? directSendStatement : sendStatement;
  return db.rows<EnqueuedSend>(statement(sendValues(messages, holders), batchShape(messages.length)));
}

/**
 * Runs the send statement of batches of `batchSize` with no sends in it (the
 * direct one when `holders.recipientsHere` says so and it writes batches of
 * that size): it writes nothing, and leaves its connection with the
 * statement parsed and planned (prepared statements are kept per
 * connection; planning one takes milliseconds). Each batch size up to the
 * next power of two is a statement of its own (batchLimit).
 */
export async function prepareEnqueue(db: Executor, holders: LocalHolders, batchSize: number): Promise<void> {
  const statement = directFits(holders, batchSize) ? directSendStatement : sendStatement;
  await db.rows(statement(sendValues([], holders), batchShape(batchSize)));
}

const sendValues = (messages: NewMessage[], holders: LocalHolders): SendValues => ({
  messages: JSON.stringify(messages.map((m, idx) => ({ ...m, idx }))),
  instanceId: holders.instanceId,
  unavailable: JSON.stringify(holders.unavailable),
  leaseSeconds: holders.leaseSeconds,
  notify: holders.notify,
});

// Data-modifying CTEs run to completion whether or not the final SELECT reads
// them. (No audit row per send: the messages table itself is that record.)
// Lists per send are aggregated once and joined by key rather than looked up
// by a subquery per send, which would scan a CTE whole for every send.
const sendStatement = shapedStatement<SendValues, number>((slot, batchSize) => sendSql(slot, batchSize));

function sendSql(slot: Slot<SendValues>, batchSize: number): SQL {
  const holders = { instanceId: slot("instanceId"), notify: slot("notify") };
  return sql`
    WITH ${sendsCte(slot, batchSize)},
    ${ROUTE_CTES},
    ${WRITTEN_CTES},
    -- Leases to presences on other instances only while the notices that name
    -- each of them (by presence and delivery) stay few.
    elsewhere AS (
      SELECT ${holders.notify} AND count(*) <= ${MAX_LEASED_ELSEWHERE} AS allowed FROM recipients
    ),
    ${directCte(slot, sql`(SELECT allowed FROM elsewhere)`)},
    ${enqueuedCte(slot, sql`true`)},
    -- attempt is 1 exactly for a delivery leased to a presence (here or
    -- elsewhere); 0 for one queued or held for a waiting request (the
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
      SELECT idx, json_agg(member_id) FILTER (WHERE NOT queue_full) AS ids, count(*) FILTER (WHERE queue_full)::int AS skipped
      FROM recipients GROUP BY idx
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
    ${sendAnswers(
      sql`coalesce(rl.ids, '[]')::text AS recipients,
           coalesce(ll.pushes, '[]')::text AS leased,
           coalesce(el.ids, '[]')::text AS "leasedElsewhere",
           coalesce(rl.skipped, 0) AS "fullQueues"`,
      sql`LEFT JOIN recipient_lists rl ON rl.idx = r.idx
    LEFT JOIN leased_lists ll ON ll.message_id = i.id
    LEFT JOIN elsewhere_lists el ON el.message_id = i.id`,
    )}`;
}
