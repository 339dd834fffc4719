// A webhook set for a member that has a reply held for one of its HTTP
// `?wait` requests (docs/http.md, "?wait=S"): the hold is the request's,
// not a webhook request under way, so the new endpoint is delivered to at
// once; the held reply stays the request's, for a retry with its key. The
// waiter is gone (its instance was killed): nothing ends the hold before
// wait + 5 s.
import { afterEach, describe, expect, test } from "bun:test";
import { PeerPool, setupMesh, useTestBroker, WebhookReceiver, type SetupMember } from "@switchboard/testkit";
import { httpBody, postMessage } from "./support/http-api.ts";
import { sendFrame, sendMany, str } from "./support/messaging.ts";

const SECRET = "webhook-secret-0123456789";
const WAIT_SECONDS = 60;

const pool = new PeerPool();
let receiver: WebhookReceiver | undefined;
afterEach(async () => {
  await pool.closeAll();
  await receiver?.stop();
});

describe("a webhook set while a reply is held for a request whose waiter is gone", () => {
  const broker = useTestBroker({ WEBHOOK_ALLOW_PRIVATE: "true" });

  test("delivers to the new endpoint at once; the held reply stays the request's", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "runner"] });
    const [app, runner] = members as [SetupMember, SetupMember];
    const token = await broker.admin.createApiToken(mesh.id, app.id);
    const runnerPeer = await pool.connect(broker.wsUrl, runner, mesh.id);
    const waiting = postMessage(broker.url, token, httpBody(runner.pubkey), { key: "cmd-1", wait: WAIT_SECONDS }).catch(() => null);
    const [request] = await runnerPeer.waitForPushes(1);
    // The waiter dies with its instance; the hold on the request's replies stays until it runs out.
    broker.process.kill("SIGKILL");
    await broker.process.exited;
    await waiting;
    await pool.closeAll();
    await broker.start();

    const requestId = str(request!.messageId);
    const replier = await pool.connect(broker.wsUrl, runner, mesh.id);
    const [reply] = await sendMany(replier, [sendFrame(app.pubkey, { replyTo: requestId })]);
    receiver = await WebhookReceiver.start();
    await broker.admin.setWebhook(mesh.id, app.id, receiver.url, SECRET);
    const [later] = await sendMany(replier, [sendFrame(app.pubkey)]);
    // Well within the hold's WAIT_SECONDS + 5 s.
    await receiver.waitFor((reqs) => reqs.length >= 1, 15_000, "the webhook's first request");
    const delivered = receiver.requests.flatMap((r) => (JSON.parse(r.body) as { messages: Array<{ messageId: string }> }).messages.map((m) => m.messageId));
    expect(delivered).toEqual([str(later!.messageId)]);

    // The request retried with its key still finds its reply.
    const retried = await postMessage<{ duplicate: boolean; reply: { messageId: string } | null }>(broker.url, token, httpBody(runner.pubkey), {
      key: "cmd-1",
      wait: 5,
    });
    expect(retried.body.duplicate).toBe(true);
    expect(retried.body.reply?.messageId).toBe(str(reply!.messageId));
  });
});
