// The bound on a member's queue (MAX_QUEUED_PER_MEMBER) against a real
// broker: a member whose queue is full is sent nothing new, over a socket
// or over HTTP; a send to it alone is refused `queue_full` and stores
// nothing, a send to many skips it and says so; a retry of a send stored
// before is still answered as such; once the member takes its queue, it is
// sent to again.
import { describe, expect, test } from "bun:test";
import { backendKind, setupMesh, useTestBroker, useTestBrokerPair, waitUntil, type Frame, type SetupMember } from "@switchboard/testkit";
import { httpBody, postMessage } from "./support/http-api.ts";
import { peersOfEachTest, scrape, str } from "./support/messaging.ts";

const MAX_QUEUED = 3;

const { connect } = peersOfEachTest();

describe("a member's queue bound", () => {
  const broker = useTestBroker({ MAX_QUEUED_PER_MEMBER: String(MAX_QUEUED), HOUSEKEEPING_INTERVAL_MS: "100" });

  const fullMembers = async () => (await scrape(broker.url)).get("broker_members_queue_full");
  const rejected = async () => (await scrape(broker.url)).get("broker_messages_rejected_total{reason=queue_full}") ?? 0;

  test("a full queue is sent nothing until its member takes some, and every answer says so", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 3 });
    const [sender, offline, other] = members as [SetupMember, SetupMember, SetupMember];
    const token = await broker.admin.createApiToken(mesh.id, sender.id);
    const peer = await connect(broker, mesh.id, sender);
    const rejectedBefore = await rejected();

    const stored: Frame[] = [];
    for (let i = 0; i < MAX_QUEUED; i++) stored.push(await peer.send(offline.pubkey, { id: `m-${i}` }));
    expect(stored.map((a) => a.type)).toEqual(["ack", "ack", "ack"]);
    // The sweep marks the queue full within its interval (until then sends still go in).
    await waitUntil(async () => (await fullMembers()) === 1, 10_000, "the queue marked full");
    const refusal = await peer.send(offline.pubkey, { id: "refused" });
    expect(refusal).toMatchObject({ type: "error", code: "queue_full", id: "refused" });
    expect(str(refusal.message)).toContain("MAX_QUEUED_PER_MEMBER");
    expect(await rejected()).toBe(rejectedBefore + 1);

    // An ephemeral send stores nothing: a full queue does not hold it back (the member is offline: nobody took it).
    expect(await peer.send(offline.pubkey, { ephemeral: true })).toMatchObject({ type: "ack", queued: false, recipients: 0 });

    // A retry of a send stored before is answered as stored, not refused.
    const retry = await peer.send(offline.pubkey, { id: "m-0" });
    expect(retry).toMatchObject({ type: "ack", messageId: stored[0]!.messageId, duplicate: true, recipients: 1 });

    // A send to many skips the full queue and says how many it skipped.
    const toAll = await peer.send("*");
    expect(toAll).toMatchObject({ type: "ack", recipients: 1, fullQueues: 1 });
    const recipient = await connect(broker, mesh.id, other);
    const [push] = await recipient.waitForPushes(1);
    expect(push?.messageId).toBe(toAll.messageId);
    // A send that skipped none carries no count.
    expect(await peer.send(other.pubkey)).not.toHaveProperty("fullQueues");

    // HTTP: 429 queue_full for the one member, the count for many.
    const overHttp = await postMessage<{ error: { code: string } }>(broker.url, token, httpBody(offline.pubkey));
    // No Retry-After (docs/http.md): when the member takes its queue is not the broker's to say.
    expect({ status: overHttp.status, code: overHttp.body.error?.code, retryAfter: overHttp.headers.get("retry-after") }).toEqual({
      status: 429,
      code: "queue_full",
      retryAfter: null,
    });
    const toAllOverHttp = await postMessage<{ recipients: number; fullQueues?: number }>(broker.url, token, httpBody("*"));
    expect(toAllOverHttp.status).toBe(201);
    expect(toAllOverHttp.body).toMatchObject({ recipients: 1, fullQueues: 1 });

    // Nothing was written for the full member past its bound: it takes exactly the three.
    const taker = await connect(broker, mesh.id, offline);
    const taken = await taker.waitForPushes(MAX_QUEUED);
    expect(taken.map((p) => p.messageId).sort()).toEqual(stored.map((a) => str(a.messageId)).sort());
    taker.ack(taken.map((p) => str(p.messageId)));

    // Taken and acknowledged, its queue is open again at the next sweep.
    await waitUntil(async () => (await fullMembers()) === 0, 10_000, "the queue's mark cleared");
    const after = await peer.send(offline.pubkey, { id: "refused" });
    expect(after).toMatchObject({ type: "ack", recipients: 1 });
    expect(after).not.toHaveProperty("duplicate");
    const all = await taker.waitForPushes(MAX_QUEUED + 1);
    expect(all.map((p) => p.messageId)).toEqual([...taken.map((p) => p.messageId), after.messageId]);
  });
});

// Two instances on one Postgres: the mark is the database's, so a send
// through the other instance (written by the send statement, its recipient
// held nowhere) is held back alike.
describe.skipIf(backendKind !== "postgres")("a member's queue bound across instances (needs DATABASE_URL)", () => {
  const pair = useTestBrokerPair({ MAX_QUEUED_PER_MEMBER: "1", HOUSEKEEPING_INTERVAL_MS: "100" });

  test("a queue filled through one instance is full for sends through the other", async () => {
    const { mesh, members } = await setupMesh(pair.a.admin, { members: 2 });
    const [sender, offline] = members as [SetupMember, SetupMember];
    const onA = await connect(pair.a, mesh.id, sender, { sessionId: "on-a" });
    const onB = await connect(pair.b, mesh.id, sender, { sessionId: "on-b" });
    expect(await onA.send(offline.pubkey, { id: "first" })).toMatchObject({ type: "ack", recipients: 1 });
    await waitUntil(async () => (await scrape(pair.b.url)).get("broker_members_queue_full") === 1, 10_000, "instance b sees the queue full");
    expect(await onB.send(offline.pubkey, { id: "second" })).toMatchObject({ type: "error", code: "queue_full", id: "second" });
    // The first send's retry, through the other instance: its duplicate, not a refusal.
    expect(await onB.send(offline.pubkey, { id: "first" })).toMatchObject({ type: "ack", duplicate: true, recipients: 1 });
  });
});
