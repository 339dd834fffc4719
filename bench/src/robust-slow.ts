// A reader that stops reading while small and large messages are sent to it,
// then reads again: everything must arrive, in order, none by a lease expiry.
import { filler, firstPushes, pipelined, rawPresence, readUntilAll, rssPeak, setupMesh, waitUntil, type SetupMember } from "@switchboard/testkit";
import postgres from "postgres";
import { answerBoundMs, logTail, MB, metric, stage, UNLIMITED, type Size, type Stage, type Steps } from "./robust-stage.ts";

export interface SlowConsumerReport {
  messages: number;
  megabytes: number;
  allArrivedInOrder: boolean;
  pushesUnwritten: number;
  redeliveries: number;
  brokerRssPeakGrowthMB: number;
  drainSeconds: number;
}

/** A reader stops reading while small and large messages are sent to it, then reads again. */
export async function slowConsumer(size: Size, steps: Steps): Promise<SlowConsumerReport> {
  const small = size === "full" ? 20_000 : 400;
  // Even the small size must outgrow the kernel's buffers of a socket that
  // does not read (a send buffer alone may grow to 4 MB), or the broker
  // never meets backpressure: 200 × 60 KB is 12 MB.
  const large = size === "full" ? 600 : 200;
  // No push may come back by a lease running out: delivery must not depend on it.
  const s = await stage(size, { LEASE_SECONDS: "3600", STALLED_PRESENCE_SECONDS: "3600", SEND_RATE_LIMIT_PER_MIN: UNLIMITED, SEND_RECIPIENTS_RATE_LIMIT_PER_MIN: UNLIMITED });
  try {
    const { mesh, members } = await setupMesh(s.admin, { members: 2 });
    const [a, b] = members as [SetupMember, SetupMember];
    const reader = await rawPresence(s.broker.wsUrl, mesh.id, b.identity);
    reader.pause();
    const writer = await rawPresence(s.broker.wsUrl, mesh.id, a.identity);
    const unwrittenBefore = await metric(s.broker, "broker_pushes_unwritten_total");
    const redeliveredBefore = await metric(s.broker, "broker_redeliveries_total");
    const peak = rssPeak(s.broker.pid);
    const frames = [
      ...Array.from({ length: large }, () => ({ type: "send", targetSpec: b.pubkey, nonce: "n", ciphertext: filler(60_000) })),
      ...Array.from({ length: small }, () => ({ type: "send", targetSpec: b.pubkey, nonce: "n", ciphertext: filler(4096) })),
    ];
    steps.mark(`slow consumer: ${frames.length} sends pipelined`);
    const acks = await pipelined(writer, frames, answerBoundMs(size));
    const sent = acks.map((ack, i) => {
      if (ack?.type !== "ack") throw new Error(`send ${i} was answered ${JSON.stringify(ack)}, not acked`);
      return String(ack.messageId);
    });
    steps.mark("slow consumer: sends acked; the reader to be congested");
    await waitUntil(async () => (await metric(s.broker, "broker_presences_congested")) > 0, 60_000, "the reader to be congested");
    steps.mark("slow consumer: reading again");
    const resumed = performance.now();
    reader.resume();
    await readUntilAll(reader, sent, answerBoundMs(size)).catch(async (error: unknown) => {
      throw new Error(`${String(error)}\n${await whyNotPushed(s, sent, new Set(firstPushes(reader)))}`);
    });
    const drainSeconds = (performance.now() - resumed) / 1000;
    steps.mark("slow consumer: drained");
    const grew = peak.stop();
    const order = firstPushes(reader);
    reader.destroy();
    writer.destroy();
    return {
      messages: sent.length,
      megabytes: Math.round((large * 60_000 + small * 4096) / MB),
      allArrivedInOrder: order.length === sent.length && order.every((id, i) => id === sent[i]),
      pushesUnwritten: (await metric(s.broker, "broker_pushes_unwritten_total")) - unwrittenBefore,
      redeliveries: (await metric(s.broker, "broker_redeliveries_total")) - redeliveredBefore,
      brokerRssPeakGrowthMB: Math.round(grew / MB),
      drainSeconds: Math.round(drainSeconds * 10) / 10,
    };
  } finally {
    await s.close();
  }
}

/** What a failed drain needs to be understood: where the messages never pushed stand in the queue. */
async function whyNotPushed(s: Stage, sent: string[], pushed: Set<string>): Promise<string> {
  const missing = sent.filter((id) => !pushed.has(id));
  const sql = postgres(s.backend.databaseUrl!, { max: 1, connect_timeout: 10, connection: { statement_timeout: 10_000 } });
  try {
    const states = await sql<Array<{ state: string; attempt: number; leased_to_live: boolean; n: number }>>`
      SELECT d.state, d.attempt, (p.id IS NOT NULL AND p.disconnected_at IS NULL) AS leased_to_live, count(*)::int AS n
      FROM (SELECT message_id, state, attempt, lease_presence_id FROM deliveries
            UNION ALL SELECT message_id, 'acked', attempt, NULL FROM acked_deliveries) d
      LEFT JOIN presences p ON p.id = d.lease_presence_id
      WHERE d.message_id = ANY(${missing}::uuid[])
      GROUP BY 1, 2, 3`;
    return [
      `${missing.length} of ${sent.length} never pushed, the first of them the ${sent.indexOf(missing[0]!) + 1}th sent`,
      `their deliveries: ${JSON.stringify(states)}`,
      `broker_presences_congested ${await metric(s.broker, "broker_presences_congested")}`,
      `the broker's last log lines:\n${logTail(s.broker)}`,
    ].join("\n");
  } finally {
    await sql.end();
  }
}
