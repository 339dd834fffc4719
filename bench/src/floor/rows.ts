// The floor's rows: what one message costs the database — its message and
// delivery rows (one statement per batch, committed with the WAL flush), the
// claim that leases the delivery and reads the message back, and the ack —
// written by a bare loop in the broker's shape: three pipelines on three
// connections, claims and acks with synchronous_commit off as the broker's
// relaxed pool writes them. No recipient resolution, audit row, retry lookup,
// JSON inputs or sockets: the ceiling the broker's own statements work under.
import postgres from "postgres";
import { stamped } from "../peer.ts";
import { summarize, type Summary } from "../stats.ts";

/** The broker's batch sizes: sends per statement (its send batcher), and the push window per presence. */
export const SEND_BATCH = 500;
const CLAIM_PER_MEMBER = 512;
const ACK_BATCH = 5000;

export interface RowsResult {
  batch: number;
  seconds: number;
  messages: number;
  messagesPerSecond: number;
  /** Row writes per message: message insert, delivery insert, claim update, and the ack's move (a delete and an insert). */
  rowWritesPerMessage: 5;
  rowWritesPerSecond: number;
  /** Postgres CPU (all its processes) per second of the run, in cores. */
  postgresCores: number;
  messagesPerPostgresCoreSecond: number;
  insertMs: Summary;
  claimMs: Summary;
  ackMs: Summary;
  /** Rows each stage moved per second of its own statements: what draining a queue that is already written can reach. */
  claimRowsPerSecond: number;
  ackRowsPerSecond: number;
}

interface Member {
  id: string;
  pubkey: string;
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** Wakes whoever waits for more work. */
class Signal {
  private waiters: Array<() => void> = [];
  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

async function seed(sql: postgres.Sql, count: number): Promise<{ meshId: string; members: Member[] }> {
  const [mesh] = await sql<Array<{ id: string }>>`
    INSERT INTO meshes (slug, name) VALUES (${`floor-${crypto.randomUUID()}`}, 'floor') RETURNING id`;
  const pubkeys = Array.from({ length: count }, () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex"));
  const members = await sql<Member[]>`
    INSERT INTO members (mesh_id, pubkey, display_name)
    SELECT ${mesh!.id}, p, 'floor' FROM unnest(${pubkeys}::text[]) AS p
    RETURNING id, pubkey`;
  return { meshId: mesh!.id, members };
}

export async function measureRows(
  databaseUrl: string,
  options: { members: number; seconds: number; postgresCpuSeconds: () => number },
): Promise<RowsResult> {
  const durable = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const relaxed = postgres(databaseUrl, { max: 2, onnotice: () => {}, connection: { synchronous_commit: "off" } });
  try {
    const { meshId, members } = await seed(durable, options.members);
    const memberIds = members.map((m) => m.id);
    const presenceId = crypto.randomUUID();
    const timings = { insert: [] as number[], claim: [] as number[], ack: [] as number[] };
    let inserted = 0;
    let claimed = 0;
    let acked = 0;
    let inserting = true;
    const toAck: Array<{ messageId: string; memberId: string }> = [];
    const insertedMore = new Signal();
    const claimedMore = new Signal();
    const ackedMore = new Signal();

    const insertBatch = async (first: number) => {
      const ids: string[] = [];
      const senders: string[] = [];
      const clients: string[] = [];
      const recipients: string[] = [];
      const targets: string[] = [];
      const payloads: string[] = [];
      for (let k = first; k < first + SEND_BATCH; k++) {
        const s = k % members.length;
        const r = (s + 1 + (Math.floor(k / members.length) % (members.length - 1))) % members.length;
        const { stamp, payload } = stamped();
        ids.push(crypto.randomUUID());
        senders.push(members[s]!.id);
        clients.push(stamp.id);
        recipients.push(members[r]!.id);
        targets.push(members[r]!.pubkey);
        payloads.push(payload);
      }
      const start = performance.now();
      await durable`
        WITH m AS (
          INSERT INTO messages (id, mesh_id, sender_member_id, client_id, target_spec, priority, nonce, ciphertext, expires_at)
          SELECT u.id, ${meshId}, u.sender, u.client, u.target, 'next', 'floor', u.payload, now() + interval '1 hour'
          FROM unnest(${ids}::uuid[], ${senders}::uuid[], ${clients}::text[], ${targets}::text[], ${payloads}::text[])
            AS u(id, sender, client, target, payload)
          RETURNING id
        )
        INSERT INTO deliveries (message_id, recipient_member_id, priority, expires_at)
        SELECT m.id, u.recipient, 'next', now() + interval '1 hour'
        FROM m JOIN unnest(${ids}::uuid[], ${recipients}::uuid[]) AS u(id, recipient) ON u.id = m.id`;
      timings.insert.push(performance.now() - start);
    };

    const insertLoop = async (until: number) => {
      while (performance.now() < until) {
        // A few batches ahead of the acks, as a broker under steady load runs.
        while (inserted - acked >= 4 * SEND_BATCH) await ackedMore.wait();
        await insertBatch(inserted);
        inserted += SEND_BATCH;
        insertedMore.notify();
      }
      inserting = false;
      insertedMore.notify();
    };

    const claimLoop = async () => {
      while (inserting || claimed < inserted) {
        if (claimed >= inserted) {
          await insertedMore.wait();
          continue;
        }
        const start = performance.now();
        const rows = await relaxed<Array<{ messageId: string; memberId: string; ciphertext: string }>>`
          WITH picked AS (
            SELECT d.id
            FROM unnest(${memberIds}::uuid[]) AS r(member_id)
            CROSS JOIN LATERAL (
              SELECT id FROM deliveries
              WHERE recipient_member_id = r.member_id AND state = 'queued' AND expires_at > now()
              ORDER BY id LIMIT ${CLAIM_PER_MEMBER}
              FOR UPDATE SKIP LOCKED
            ) d
          ),
          leased AS (
            UPDATE deliveries d
            SET state = 'leased', lease_presence_id = ${presenceId}, lease_expires_at = now() + interval '30 seconds',
                attempt = d.attempt + 1, delivered_at = coalesce(d.delivered_at, now())
            FROM picked WHERE d.id = picked.id
            RETURNING d.message_id, d.recipient_member_id
          )
          SELECT l.message_id AS "messageId", l.recipient_member_id AS "memberId", m.ciphertext
          FROM leased l JOIN messages m ON m.id = l.message_id`;
        timings.claim.push(performance.now() - start);
        claimed += rows.length;
        for (const r of rows) toAck.push({ messageId: r.messageId, memberId: r.memberId });
        if (rows.length > 0) claimedMore.notify();
      }
    };

    const ackLoop = async () => {
      while (inserting || acked < inserted) {
        if (toAck.length === 0) {
          await Promise.race([claimedMore.wait(), insertedMore.wait()]);
          continue;
        }
        const batch = toAck.splice(0, ACK_BATCH);
        const start = performance.now();
        const done = await relaxed`
          WITH gone AS (
            DELETE FROM deliveries d
            USING unnest(${batch.map((a) => a.messageId)}::uuid[], ${batch.map((a) => a.memberId)}::uuid[]) AS a(message_id, member_id)
            WHERE d.message_id = a.message_id AND d.recipient_member_id = a.member_id AND d.state IN ('queued', 'leased')
            RETURNING d.id, d.message_id, d.recipient_member_id, d.priority, d.attempt, d.created_at, d.expires_at, d.delivered_at
          )
          INSERT INTO acked_deliveries (id, message_id, recipient_member_id, priority, attempt, created_at, expires_at, delivered_at, acked_at)
          SELECT id, message_id, recipient_member_id, priority, attempt, created_at, expires_at, delivered_at, now() FROM gone`;
        timings.ack.push(performance.now() - start);
        if (done.count !== batch.length) throw new Error(`floor acks: ${done.count} rows for ${batch.length} acks`);
        acked += batch.length;
        ackedMore.notify();
      }
    };

    const cpuBefore = options.postgresCpuSeconds();
    const start = performance.now();
    await Promise.all([insertLoop(start + options.seconds * 1000), claimLoop(), ackLoop()]);
    const seconds = (performance.now() - start) / 1000;
    const cpu = options.postgresCpuSeconds() - cpuBefore;

    const [check] = await durable<Array<{ acked: number; owed: number }>>`
      SELECT (SELECT count(*)::int FROM acked_deliveries) AS acked, (SELECT count(*)::int FROM deliveries) AS owed`;
    if (check?.acked !== inserted || check.owed !== 0) {
      throw new Error(`floor rows: ${check?.acked} deliveries acked and ${check?.owed} owed for ${inserted} messages`);
    }
    return {
      batch: SEND_BATCH,
      seconds,
      messages: acked,
      messagesPerSecond: acked / seconds,
      rowWritesPerMessage: 5,
      rowWritesPerSecond: (5 * acked) / seconds,
      postgresCores: cpu / seconds,
      messagesPerPostgresCoreSecond: cpu > 0 ? acked / cpu : 0,
      insertMs: summarize(timings.insert),
      claimMs: summarize(timings.claim),
      ackMs: summarize(timings.ack),
      claimRowsPerSecond: acked / (sum(timings.claim) / 1000),
      ackRowsPerSecond: acked / (sum(timings.ack) / 1000),
    };
  } finally {
    await Promise.all([durable.end(), relaxed.end()]);
  }
}
