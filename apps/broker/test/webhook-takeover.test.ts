// PROTOCOL.md §8: a webhook request in flight holds a lease, so when the
// instance sending it dies another instance takes the member over and sends
// the same messages; nothing is lost with the instance. The broker is
// SIGKILLed mid-request and started again: the new process is another
// instance of the same broker.
import { afterEach, describe, expect, test } from "bun:test";
import type { PushBatch } from "@switchboard/protocol";
import { PeerPool, setupMesh, useTestBroker, waitUntil, WebhookReceiver, type SetupMember } from "@switchboard/testkit";
import { messageStatus } from "./support/http-api.ts";
import { sendFrame, sendMany, str } from "./support/messaging.ts";

const SECRET = "webhook-secret-0123456789";

const pool = new PeerPool();
let receiver: WebhookReceiver | undefined;
afterEach(async () => {
  await pool.closeAll();
  await receiver?.stop();
});

const idsOf = (body: string): string[] => (JSON.parse(body) as PushBatch).messages.map((m) => m.messageId);

describe("a webhook request whose instance dies", () => {
  // A short lease (the webhook's outlives its request's timeout: max(LEASE_SECONDS, timeout + 5 s)).
  const broker = useTestBroker({ WEBHOOK_ALLOW_PRIVATE: "true", LEASE_SECONDS: "2", WEBHOOK_TIMEOUT_MS: "1000", CATCH_UP_INTERVAL_MS: "300" });

  test("is taken over by another instance once its lease runs out: the same messages arrive and are acknowledged", async () => {
    let dying = true;
    // The first request is never answered while its instance lives.
    receiver = await WebhookReceiver.start(() => (dying ? { status: 200, delayMs: 600_000 } : { status: 204 }));
    const { mesh, members } = await setupMesh(broker.admin, { members: ["sender", "hook"] });
    const [sender, hook] = members as [SetupMember, SetupMember];
    await broker.admin.setWebhook(mesh.id, hook.id, `${receiver.url}/events`, SECRET);
    const peer = await pool.connect(broker.wsUrl, sender, mesh.id);
    const sent = (await sendMany(peer, [sendFrame(hook.pubkey), sendFrame(hook.pubkey)])).map((a) => str(a.messageId));
    await receiver.waitFor((reqs) => reqs.flatMap((r) => idsOf(r.body)).length >= 2, 15_000, "the first request with both messages");

    broker.process.kill("SIGKILL");
    await broker.process.exited;
    await pool.closeAll();
    dying = false;
    const before = receiver.requests.length;
    await broker.start();

    await receiver.waitFor((reqs) => reqs.slice(before).flatMap((r) => idsOf(r.body)).length >= 2, 30_000, "the messages again from another instance");
    expect(receiver.requests.slice(before).flatMap((r) => idsOf(r.body))).toEqual(sent);
    // The 2xx is committed after the receiver has the request.
    const states = async () =>
      Promise.all(sent.map(async (id) => (await messageStatus<{ recipients: Array<{ state: string }> }>(broker.url, broker.adminToken, id)).body.recipients[0]?.state));
    await waitUntil(async () => ((await states()).every((s) => s === "acked") ? true : undefined), 15_000, "both acknowledged");
  });
});
