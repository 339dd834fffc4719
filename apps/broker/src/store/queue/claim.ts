// Claim: queued → leased. One statement leases work to many recipients. The
// consumers differ only in whom they lease to: a socket claim picks one of a
// member's presences, a holder claim (a webhook attempt) names its own lease
// id. lease_presence_id carries either; it has no foreign key. (readLeases
// reads, with their messages, deliveries another instance's send leased;
// leasesOf lists a presence's leases, and renewLeases renews those whose
// notice was missed.)
import { shapedStatement, type Executor } from "@switchboard/db";
import { sql, type SQL } from "drizzle-orm";
import { batchLimit, batchShape, isoTime, jsonParam, jsonText, uuidById, uuidRows } from "../sql.ts";
import { queueReads, receivesOnSockets, WEBHOOK_STATUS } from "./eligibility.ts";
import { heldLeases } from "./lock-order.ts";
import type { LeasedDelivery } from "./types.ts";

export interface ClaimRequest {
  memberId: string;
  /** The member's presences the caller can push to, with how many pushes each may take now. */
  presences: Array<{ id: string; room: number }>;
}

/**
 * Leases, for every row of `target` (member_id, lim, holder_id, status), the
 * member's oldest queued deliveries that status lets through, up to lim,
 * skipping rows another claimer holds, and returns them with their messages.
 */
function leaseFor(target: SQL, leaseSeconds: number): SQL {
  const reads = queueReads(sql`t.status`, sql`queued.priority`);
  // The member is named as a range of one, and the order is the member
  // index's own (member, id): named by =, the member is a constant of the
  // read, its order reduces to the id's, and on statistics that give each of
  // a few members hundreds of deliveries, a walk of the primary key in id
  // order testing each row's member looked cheaper than the member's index
  // (apps/broker/test/claim-plans.test.ts).
  const read = (gate: SQL) => sql`
    SELECT id FROM (
      SELECT id FROM deliveries queued
      WHERE ${gate} AND recipient_member_id >= t.member_id AND recipient_member_id <= t.member_id AND state = 'queued' AND expires_at > now()
      ORDER BY recipient_member_id, id
      LIMIT t.lim
      FOR UPDATE SKIP LOCKED
    ) taken`;
  return sql`
    WITH target AS (${target}),
    -- One of the two reads runs for each target, by its status: one that
    -- receives every priority reads the queue in order; one that receives
    -- urgent messages alone reads those through their own index. Read
    -- through the queue's, a busy session's claim walked all its held
    -- messages to find none it may take, at every claim.
    picked AS (
      SELECT d.id, t.holder_id
      FROM target t
      CROSS JOIN LATERAL (
        ${read(reads.every)}
        UNION ALL
        ${read(reads.urgent)}
      ) d
    ),
    -- The picked rows by their ids, each with its holder looked up by id
    -- (uuidById): joined to picked, a plan made while the statistics said
    -- the table was empty read all of it for each claim.
    leased AS (
      UPDATE deliveries d
      SET state = 'leased', lease_presence_id = ${uuidById("picked", "holder_id", "d.id")},
          lease_expires_at = now() + make_interval(secs => ${leaseSeconds}),
          attempt = d.attempt + 1, delivered_at = coalesce(d.delivered_at, now())
      WHERE d.id = ANY (ARRAY(SELECT id FROM picked))
      RETURNING d.id, d.message_id, d.recipient_member_id, d.attempt, d.lease_presence_id AS holder_id
    )
    SELECT l.holder_id AS "presenceId", l.recipient_member_id AS "memberId", ${OWED_COLUMNS},
           l.attempt, l.id::float8 AS seq
    FROM leased l
    ${messageOf("l")}`;
}

/** The columns of an OwedMessage, from messageOf's `m`. */
const OWED_COLUMNS = sql.raw(`m.id AS "messageId",
           m.mesh_id AS "meshId", m.pubkey AS "senderPubkey", m.target_spec AS "targetSpec",
           m.priority, m.nonce, m.ciphertext, m.created_at AS "createdAt", m.reply_to AS "replyTo"`);

/**
 * The message of the delivery row `d` (its message_id) as `m`, with its
 * sender's key. LIMIT 1 keeps each lookup a lateral index probe: joined
 * plainly, a generic plan may hash the whole messages table on every claim.
 * The sender's key is a probe of its own: joined, the order of the members'
 * key made a scan of the (sender, client id) index look as cheap.
 */
function messageOf(d: string): SQL {
  return sql`CROSS JOIN LATERAL (
      SELECT msg.id, msg.mesh_id, (SELECT s.pubkey FROM members s WHERE s.id = msg.sender_member_id) AS pubkey,
             msg.target_spec, msg.priority, msg.nonce, msg.ciphertext,
             ${isoTime("msg.created_at")} AS created_at, msg.reply_to
      FROM messages msg
      WHERE msg.id = ${sql.raw(d)}.message_id
      LIMIT 1
    ) m`;
}

/**
 * Deliveries a send statement of another instance leased to presences here,
 * named in its notice (presence, delivery id), with their messages: those
 * still leased to the presence named. It writes nothing: the lease is the
 * send's, so the push needs no claim and no commit. Each delivery is probed
 * by its id (OFFSET 0 keeps the tests of its lease out of the probe).
 */
export async function readLeases(db: Executor, pushes: Array<{ presenceId: string; seq: number }>): Promise<LeasedDelivery[]> {
  if (pushes.length === 0) return [];
  return db.rows<LeasedDelivery>(readLeasesStatement({ pushes: JSON.stringify(pushes) }, batchShape(pushes.length)));
}

const readLeasesStatement = shapedStatement<{ pushes: string }, number>(
  (slot, batchSize) => sql`
    SELECT l.lease_presence_id AS "presenceId", l.recipient_member_id AS "memberId", ${OWED_COLUMNS},
           l.attempt, l.id::float8 AS seq
    FROM (
      SELECT * FROM jsonb_to_recordset(${jsonText(slot("pushes"))}) AS x("presenceId" uuid, seq bigint)
      LIMIT ${batchLimit(batchSize)}
    ) x
    CROSS JOIN LATERAL (
      SELECT id, message_id, recipient_member_id, lease_presence_id, attempt, state FROM deliveries WHERE id = x.seq OFFSET 0
    ) l
    ${messageOf("l")}
    WHERE l.state = 'leased' AND l.lease_presence_id = x."presenceId"`,
);

/**
 * The deliveries leased to these presences whose lease is still running, by
 * delivery and message id: for their instance to find those it never heard
 * of (services/delivery/missed-leases.ts). Each presence's leases are read by
 * their holder's index (OFFSET 0 keeps the test of the lease's end out of
 * the probe, as requeue's lapsed leases do).
 */
export async function leasesOf(db: Executor, presenceIds: string[]): Promise<Array<{ presenceId: string; seq: number; messageId: string }>> {
  if (presenceIds.length === 0) return [];
  return db.rows(sql`
    SELECT p.id AS "presenceId", l.id::float8 AS seq, l.message_id AS "messageId"
    FROM ${uuidRows(presenceIds)} p
    CROSS JOIN LATERAL (
      SELECT id, message_id, lease_expires_at FROM deliveries WHERE lease_presence_id = p.id AND state = 'leased' OFFSET 0
    ) l
    WHERE l.lease_expires_at > now()`);
}

/**
 * As readLeases, for deliveries leased to presences here whose notice was
 * missed: each lease still held by the presence named is renewed for
 * `leaseSeconds` from now, as a claim's is, since its push goes out only
 * now (the window here counts its lease from the push). The rows are
 * locked in the one order (lock-order.ts).
 */
export async function renewLeases(
  db: Executor,
  pushes: Array<{ presenceId: string; seq: number }>,
  leaseSeconds: number,
): Promise<LeasedDelivery[]> {
  if (pushes.length === 0) return [];
  const held = heldLeases(sql`
    SELECT x.seq AS id, x."presenceId" AS presence_id
    FROM jsonb_to_recordset(${jsonParam(pushes)}) AS x("presenceId" uuid, seq bigint)
    LIMIT ${batchLimit(pushes.length)}`);
  return db.rows<LeasedDelivery>(sql`
    ${held.with},
    renewed AS (
      UPDATE deliveries d SET lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
      WHERE ${held.where}
      RETURNING d.id, d.message_id, d.recipient_member_id, d.lease_presence_id, d.attempt
    )
    SELECT r.lease_presence_id AS "presenceId", r.recipient_member_id AS "memberId", ${OWED_COLUMNS},
           r.attempt, r.id::float8 AS seq
    FROM renewed r
    ${messageOf("r")}`);
}

// Per member it picks one of the given presences (an idle one first, as it
// may take every priority) and leases to it up to its room. Members with a
// webhook are skipped: their deliveries go only there. The JSON input is
// capped with LIMIT n so the planner probes indexes per member; every join
// here is a lateral probe, not a join of CTEs, so a generic plan's low row
// estimate cannot multiply (compare batchLimit in sql.ts).
export async function claimForPresences(
  db: Executor,
  requests: ClaimRequest[],
  leaseSeconds: number,
): Promise<LeasedDelivery[]> {
  if (requests.length === 0) return [];
  // The member's presences are a handful: said so by a literal LIMIT, Postgres
  // probes each by its key; assumed a hundred, it read every live presence of
  // the instance for each member. Each is probed by its id alone (OFFSET 0
  // keeps the test of its connection out of the probe): with that test in
  // it, or joined plainly, a plan made on statistics that said the table was
  // empty read the live presences' index whole instead.
  const mostPresences = Math.max(...requests.map((r) => r.presences.length));
  const target = sql`
    SELECT w."memberId" AS member_id, p.room AS lim, p.id AS holder_id, p.status
    FROM (
      SELECT * FROM jsonb_to_recordset(${jsonParam(requests)}) AS w("memberId" uuid, presences jsonb)
      LIMIT ${batchLimit(requests.length)}
    ) w
    CROSS JOIN LATERAL (
      SELECT pr.id, pr.status, x.room
      FROM (SELECT * FROM jsonb_to_recordset(w.presences) AS x(id uuid, room int) LIMIT ${batchLimit(mostPresences)}) x
      CROSS JOIN LATERAL (SELECT id, status, disconnected_at FROM presences WHERE id = x.id OFFSET 0) pr
      WHERE pr.disconnected_at IS NULL
      ORDER BY (pr.status = 'idle') DESC, random()
      LIMIT 1
    ) p
    WHERE ${receivesOnSockets(sql`w."memberId"`)}`;
  return db.rows<LeasedDelivery>(leaseFor(target, leaseSeconds));
}

/** Up to `limit` of a member's queued deliveries, in queue order, leased to `holderId` (a webhook attempt). */
export async function claimForHolder(
  db: Executor,
  memberId: string,
  holderId: string,
  limit: number,
  leaseSeconds: number,
): Promise<LeasedDelivery[]> {
  const target = sql`
    SELECT ${memberId}::uuid AS member_id, ${limit}::int AS lim, ${holderId}::uuid AS holder_id,
           ${WEBHOOK_STATUS}::text AS status`;
  return db.rows<LeasedDelivery>(leaseFor(target, leaseSeconds));
}

/**
 * Members with queued deliveries and a live presence on this instance that
 * receives on sockets: the catch-up after missed wake-ups. The instance's
 * live presences are read by its index alone (OFFSET 0 keeps the rest of the
 * statement out of that read), and each member's queue and webhook probed
 * once, not once per presence: the queue's by a scalar subquery run for its
 * member that takes its oldest queued delivery (as EXISTS, a semi-join
 * planned while the statistics said the table was empty walked every queued
 * delivery). It reads the queue's index alone, expired or not: with the
 * expiry tested on each row, a bitmap scan of the index, which cannot stop
 * at the first, cost as little as a walk of it in order, and read all of
 * the member's. A member whose queued deliveries have all expired is then
 * looked at, in vain, until the expiry sweep marks them (the housekeeping
 * interval).
 */
export async function membersWithQueuedWork(db: Executor, instanceId: string): Promise<string[]> {
  const rows = await db.rows<{ memberId: string }>(sql`
    SELECT m.member_id AS "memberId"
    FROM (
      SELECT DISTINCT p.member_id
      FROM (SELECT member_id FROM presences WHERE instance_id = ${instanceId} AND disconnected_at IS NULL OFFSET 0) p
    ) m
    WHERE ${receivesOnSockets(sql`m.member_id`)}
      AND (
        SELECT d.id FROM deliveries d
        WHERE d.recipient_member_id = m.member_id AND d.state = 'queued'
        ORDER BY d.id LIMIT 1
      ) IS NOT NULL`);
  return rows.map((r) => r.memberId);
}
