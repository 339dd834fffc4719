// Webhook recipients (docs/http.md): a member whose deliveries go to an HTTP
// endpoint. The row's lease (lease_holder, lease_expires_at) makes one
// request in flight per member across instances; the holder is the id the
// attempt's deliveries are leased to (queue/claim.ts claimForHolder).
import type { Executor } from "@switchboard/db";
import type { WebhookOutcomeView } from "@switchboard/protocol";
import { sql } from "drizzle-orm";
import { hasQueued } from "./queue/eligibility.ts";
import { isoTime } from "./sql.ts";

export type WebhookOutcome = WebhookOutcomeView;

export interface WebhookView {
  url: string;
  /** Deliveries owed to the member and not yet acknowledged (queued or in flight). */
  queued: number;
  failures: number;
  lastAttemptAt: string | null;
  lastOutcome: WebhookOutcome | null;
  lastStatus: number | null;
  /** When the next request is due (in the past: now, or in flight); null when nothing is queued. */
  nextAttemptAt: string | null;
}

/**
 * Sets url and secret and starts afresh (no failures, due now). Due from the
 * moment the row is written, not from this transaction's start: an attempt
 * under way tells from that the endpoint was set after it was taken
 * (recordAttempt), even where url, secret and failures read as before.
 *
 * A webhook deleted while its request was under way took that request's
 * lease with its row. A new row takes the lease over from the deliveries
 * that request holds (leased to no presence), so the new endpoint waits for
 * it as for an endpoint set anew: otherwise it could be sent newer messages
 * meanwhile, and the batch that request gives back would follow them. One
 * of those deliveries is locked, to wait for the request's end being
 * written: that gives back or acks them all in one transaction. A reply
 * held for one of the member's waiting HTTP requests (leased to the id of
 * the message it answers, reply.ts) is no such request: taken for one, it
 * would hold the new endpoint back until the hold runs out (the wait + 5 s),
 * its waiter gone or not.
 */
export async function upsertWebhook(db: Executor, memberId: string, url: string, secret: string): Promise<void> {
  await db.rows(sql`
    WITH in_flight AS (
      SELECT d.lease_presence_id AS holder, d.lease_expires_at AS expires
      FROM deliveries d
      WHERE d.recipient_member_id = ${memberId}::uuid AND d.state = 'leased' AND d.lease_expires_at > now()
        AND NOT EXISTS (SELECT 1 FROM presences p WHERE p.id = d.lease_presence_id)
        AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.member_id = ${memberId}::uuid)
        AND NOT EXISTS (SELECT 1 FROM messages r WHERE r.id = d.message_id AND r.reply_to = d.lease_presence_id)
      LIMIT 1
      FOR SHARE OF d
    )
    INSERT INTO webhooks (member_id, url, secret, lease_holder, lease_expires_at)
    VALUES (${memberId}::uuid, ${url}, ${secret}, (SELECT holder::text FROM in_flight), (SELECT expires FROM in_flight))
    ON CONFLICT (member_id) DO UPDATE
    SET url = excluded.url, secret = excluded.secret, failures = 0, next_attempt_at = clock_timestamp()`);
}

export async function webhookView(db: Executor, memberId: string): Promise<WebhookView | null> {
  const rows = await db.rows<WebhookView>(sql`
    SELECT w.url, q.n AS queued, w.failures, ${isoTime("w.last_attempt_at")} AS "lastAttemptAt",
           w.last_outcome AS "lastOutcome", w.last_status AS "lastStatus",
           CASE WHEN q.n > 0 THEN ${isoTime("w.next_attempt_at")} END AS "nextAttemptAt"
    FROM webhooks w
    CROSS JOIN LATERAL (
      SELECT ((SELECT count(*) FROM deliveries d
               WHERE d.recipient_member_id = w.member_id AND d.state = 'queued' AND d.expires_at > now())
            + (SELECT count(*) FROM deliveries d
               WHERE d.recipient_member_id = w.member_id AND d.state = 'leased' AND d.expires_at > now()))::int AS n
    ) q
    WHERE w.member_id = ${memberId}::uuid`);
  return rows[0] ?? null;
}

/** False when the member had no webhook. */
export async function deleteWebhook(db: Executor, memberId: string): Promise<boolean> {
  const rows = await db.rows(sql`DELETE FROM webhooks WHERE member_id = ${memberId}::uuid RETURNING member_id`);
  return rows.length === 1;
}

export interface TakenWebhook {
  url: string;
  secret: string;
  failures: number;
  /** The holder of the lease this one replaces (an attempt whose instance died), if any. */
  previousHolder: string | null;
  /** When it was taken (the database's text, to the microsecond): the endpoint was due then. */
  takenAt: string;
}

/** Leases the member's webhook to `holderId` when it is due and no live attempt holds it. */
export async function takeWebhook(tx: Executor, memberId: string, holderId: string, leaseSeconds: number): Promise<TakenWebhook | null> {
  const rows = await tx.rows<TakenWebhook>(sql`
    WITH free AS (
      SELECT member_id, lease_holder FROM webhooks
      WHERE member_id = ${memberId}::uuid AND next_attempt_at <= now()
        AND (lease_holder IS NULL OR lease_expires_at < now())
      FOR UPDATE SKIP LOCKED
    )
    UPDATE webhooks w SET lease_holder = ${holderId}, lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
    FROM free WHERE w.member_id = free.member_id
    RETURNING w.url, w.secret, w.failures, free.lease_holder AS "previousHolder", now()::text AS "takenAt"`);
  return rows[0] ?? null;
}

/** The attempt found nothing to send: the lease is given back at once. */
export async function releaseWebhook(tx: Executor, memberId: string, holderId: string): Promise<void> {
  await tx.rows(sql`
    UPDATE webhooks SET lease_holder = NULL, lease_expires_at = NULL
    WHERE member_id = ${memberId}::uuid AND lease_holder = ${holderId}`);
}

export interface AttemptRecord {
  startedAt: number;
  /** The endpoint the attempt was made to, its failures then, and when it was taken (TakenWebhook). */
  url: string;
  secret: string;
  failures: number;
  takenAt: string;
  outcome: WebhookOutcome;
  status: number | null;
  /** After a failure: seconds until the next attempt. */
  retryInSeconds: number;
}

/**
 * Records an attempt's end and gives the lease back: a success resets the
 * failures and leaves the member due, a failure counts and pushes the next
 * attempt back — unless the endpoint was set anew while the attempt was
 * under way (it became due after the attempt took it; or, as a broker from
 * before that rule sets it, its url, secret or failures are not what the
 * attempt started with): it starts afresh, due now, whatever the attempt
 * met. Only while this holder still holds the lease. Returns whether a
 * failure was counted; null when the member has no webhook this holder
 * holds (it was deleted meanwhile, or the lease ran out and moved on).
 */
export async function recordAttempt(tx: Executor, memberId: string, holderId: string, a: AttemptRecord): Promise<boolean | null> {
  const ok = a.outcome === "ok";
  const unchanged = sql`(next_attempt_at <= ${a.takenAt}::timestamptz AND url = ${a.url} AND secret = ${a.secret} AND failures = ${a.failures}::int)`;
  const rows = await tx.rows<{ counted: boolean }>(sql`
    UPDATE webhooks
    SET failures = CASE WHEN ${ok}::boolean THEN 0 WHEN ${unchanged} THEN failures + 1 ELSE failures END,
        last_attempt_at = to_timestamp(${a.startedAt / 1000}::float8),
        last_outcome = ${a.outcome}, last_status = ${a.status}::int,
        next_attempt_at = CASE WHEN ${ok}::boolean THEN now()
                               WHEN ${unchanged} THEN now() + make_interval(secs => ${a.retryInSeconds}::float8)
                               ELSE next_attempt_at END,
        lease_holder = NULL, lease_expires_at = NULL
    WHERE member_id = ${memberId}::uuid AND lease_holder = ${holderId}
    -- RETURNING sees the row as updated: a counted failure is one more than the attempt started with.
    RETURNING NOT ${ok}::boolean AND url = ${a.url} AND secret = ${a.secret} AND failures = ${a.failures + 1}::int AS counted`);
  return rows[0]?.counted ?? null;
}

export interface WebhookMember {
  memberId: string;
  meshId: string;
  /** Due now, free, with queued deliveries. */
  due: boolean;
  /** How long until the next attempt is due (0 when it is). */
  dueInMs: number;
}

/** Every webhook member, and which have work that no attempt is taking care of. */
export async function webhookMembers(db: Executor): Promise<WebhookMember[]> {
  return db.rows<WebhookMember>(sql`
    SELECT w.member_id AS "memberId", m.mesh_id AS "meshId",
           (w.next_attempt_at <= now() AND (w.lease_holder IS NULL OR w.lease_expires_at < now())
            AND ${hasQueued(sql`w.member_id`)}) AS due,
           greatest(0, ceil(extract(epoch FROM w.next_attempt_at - now()) * 1000))::float8 AS "dueInMs"
    FROM webhooks w JOIN members m ON m.id = w.member_id
    WHERE m.revoked_at IS NULL`);
}

/**
 * Deliveries owed to webhook members and not yet acknowledged, over all
 * instances: as webhookView counts them, so those past their expiry that
 * the sweep has not marked yet are left out (they will never be sent).
 * Queued and leased are counted apart, each through its partial index: one
 * predicate for both reads every delivery, the acknowledged ones kept for
 * the retention included.
 */
export async function webhookQueueDepth(db: Executor): Promise<number> {
  const rows = await db.rows<{ n: number }>(sql`
    SELECT ((SELECT count(*) FROM webhooks w
             JOIN deliveries d ON d.recipient_member_id = w.member_id AND d.state = 'queued' AND d.expires_at > now())
          + (SELECT count(*) FROM webhooks w
             JOIN deliveries d ON d.recipient_member_id = w.member_id AND d.state = 'leased' AND d.expires_at > now()))::int AS n`);
  return rows[0]?.n ?? 0;
}
