// PROTOCOL.md §8 against a real broker and a real HTTP endpoint on loopback:
// the webhook admin routes, signed push batches of at most 100 in queue
// order, retries of every non-2xx (redirects not followed), timeouts and
// refused connections, backoff per member that resets after a success,
// expiry counted and nothing dropped before it, the member's sockets left
// out, and one request in flight per member across two instances.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { verifyWebhook } from "@switchboard/client";
import type { PushBatch } from "@switchboard/protocol";
import {
  backendKind,
  PeerPool,
  setupMesh,
  TestBroker,
  useTestBroker,
  waitUntil,
  WebhookReceiver,
  type ReceivedRequest,
  type Script,
  type SetupMember,
} from "@switchboard/testkit";
import { httpBody, messageStatus, postMessage, type ErrorBody } from "./support/http-api.ts";
import { deltas, ISO, scrape, sendFrame, sendMany, str } from "./support/messaging.ts";

const SECRET = "webhook-secret-0123456789";
const WEBHOOK_TIMEOUT_MS = 800;
const TIMING = {
  WEBHOOK_TIMEOUT_MS: String(WEBHOOK_TIMEOUT_MS),
  WEBHOOK_BACKOFF_MIN_MS: "100",
  WEBHOOK_BACKOFF_MAX_MS: "400",
  LEASE_SECONDS: "2",
  CATCH_UP_INTERVAL_MS: "300",
  SWEEP_INTERVAL_MS: "200",
  HOUSEKEEPING_INTERVAL_MS: "300",
};

const pool = new PeerPool();
const receivers: WebhookReceiver[] = [];
afterEach(async () => {
  await pool.closeAll();
  await Promise.all(receivers.splice(0).map((r) => r.stop()));
});

async function receiver(script?: Script) {
  const r = await WebhookReceiver.start(script);
  receivers.push(r);
  return r;
}

const batchOf = (r: ReceivedRequest): PushBatch => JSON.parse(r.body) as PushBatch;
const idsOf = (r: ReceivedRequest): string[] => batchOf(r).messages.map((m) => m.messageId);

interface WebhookState {
  url: string;
  queued: number;
  failures: number;
  lastAttemptAt: string | null;
  lastOutcome: string | null;
  lastStatus: number | null;
  nextAttemptAt: string | null;
}

const path = (meshId: string, member: SetupMember) => `/v1/meshes/${meshId}/members/${member.id}/webhook`;

/** The webhook admin routes and a webhook mesh on one test broker. */
function webhookApi(broker: TestBroker) {
  const state = async (meshId: string, member: SetupMember): Promise<WebhookState> => {
    const res = await broker.admin.raw("GET", path(meshId, member));
    expect(res.status).toBe(200);
    return (await res.json()) as WebhookState;
  };
  const stateBecomes = (meshId: string, member: SetupMember, check: (s: WebhookState) => boolean, what: string) => {
    let last: WebhookState | undefined;
    return waitUntil(
      async () => {
        last = await state(meshId, member);
        return check(last) ? last : undefined;
      },
      15_000,
      what,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)} (last state ${JSON.stringify(last)})`);
    });
  };

  /** A mesh of a sender (with a socket) and a webhook member aimed at receiver r. */
  async function webhookMesh(r: WebhookReceiver, members = 2) {
    const setup = await setupMesh(broker.admin, { members });
    const [sender, hook] = setup.members as [SetupMember, SetupMember];
    await broker.admin.setWebhook(setup.mesh.id, hook.id, `${r.url}/events`, SECRET);
    const senderPeer = await pool.connect(broker.wsUrl, sender, setup.mesh.id);
    return { ...setup, sender, hook, senderPeer };
  }

  return { state, stateBecomes, webhookMesh };
}

describe("webhook recipients", () => {
  const broker = useTestBroker({ WEBHOOK_ALLOW_PRIVATE: "true", SEND_RATE_LIMIT_PER_MIN: "100000", ...TIMING });
  const { state, stateBecomes, webhookMesh } = webhookApi(broker);

  test("PUT makes a member an HTTP recipient and answers as GET does; the secret is never shown; errors", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [m, revoked] = members as [SetupMember, SetupMember];
    const put = await broker.admin.raw("PUT", path(mesh.id, m), { url: "http://127.0.0.1:9/hook", secret: SECRET });
    expect(put.status).toBe(200);
    const shown = (await put.json()) as WebhookState;
    expect(shown).toEqual({
      url: "http://127.0.0.1:9/hook",
      queued: 0,
      failures: 0,
      lastAttemptAt: null,
      lastOutcome: null,
      lastStatus: null,
      nextAttemptAt: null,
    });
    expect(await state(mesh.id, m)).toEqual(shown);
    expect(JSON.stringify(shown)).not.toContain(SECRET);
    // By pubkey too, like every member route.
    expect((await broker.admin.raw("GET", `/v1/meshes/${mesh.slug}/members/${m.pubkey}/webhook`)).status).toBe(200);

    const code = async (res: Response) => ({ status: res.status, code: ((await res.json()) as ErrorBody).error.code });
    expect(await code(await broker.admin.raw("GET", path(mesh.id, revoked)))).toEqual({ status: 404, code: "not_found" });
    expect(await code(await broker.admin.raw("GET", path(mesh.id, m), undefined, null))).toEqual({ status: 401, code: "unauthorized" });
    expect(await code(await broker.admin.raw("PUT", `/v1/meshes/${mesh.id}/members/${"ef".repeat(32)}/webhook`, { url: "http://127.0.0.1:9", secret: SECRET }))).toEqual({
      status: 404,
      code: "not_found",
    });
    for (const body of [
      { url: "ftp://127.0.0.1/x", secret: SECRET },
      { url: "file:///etc/passwd", secret: SECRET },
      { url: "not a url", secret: SECRET },
      { url: "http://127.0.0.1:9/hook", secret: "short" },
      { url: "http://127.0.0.1:9/hook" },
      { url: "http://127.0.0.1:9/hook", secret: SECRET, extra: 1 },
      // Text Postgres cannot hold (it was a 500).
      { url: "http://127.0.0.1:9/ho\u0000ok", secret: SECRET },
      { url: "http://127.0.0.1:9/hook", secret: `${SECRET}\u0000` },
    ]) {
      expect(await code(await broker.admin.raw("PUT", path(mesh.id, m), body))).toEqual({ status: 400, code: "invalid" });
    }
    await broker.admin.revokeMember(mesh.id, revoked.id);
    expect(await code(await broker.admin.raw("PUT", path(mesh.id, revoked), { url: "http://127.0.0.1:9", secret: SECRET }))).toEqual({
      status: 409,
      code: "conflict",
    });
    const deleted = await broker.admin.raw("DELETE", path(mesh.id, m));
    expect(deleted.status).toBe(200);
    expect(((await deleted.json()) as WebhookState).url).toBe("http://127.0.0.1:9/hook");
    expect(await code(await broker.admin.raw("GET", path(mesh.id, m)))).toEqual({ status: 404, code: "not_found" });
    expect(await code(await broker.admin.raw("DELETE", path(mesh.id, m)))).toEqual({ status: 404, code: "not_found" });
  });

  test("a PUT racing a DELETE answers 200 with the webhook it set, never 404: each call is applied and answered whole", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const member = members[0]!;
    const body = { url: "http://127.0.0.1:9/raced", secret: SECRET };
    const statuses = { put: new Map<number, number>(), delete: new Map<number, number>() };
    const count = (into: Map<number, number>, status: number) => into.set(status, (into.get(status) ?? 0) + 1);
    for (let round = 0; round < 100; round++) {
      const [put, del] = await Promise.all([broker.admin.raw("PUT", path(mesh.id, member), body), broker.admin.raw("DELETE", path(mesh.id, member))]);
      count(statuses.put, put.status);
      count(statuses.delete, del.status);
      if (put.status === 200) expect(((await put.json()) as WebhookState).url).toBe(body.url);
      else await put.body?.cancel();
      await del.body?.cancel();
    }
    expect([...statuses.put]).toEqual([[200, 100]]);
    // A DELETE that came first found nothing to delete.
    expect([...statuses.delete.keys()].every((s) => s === 200 || s === 404)).toBe(true);
  });

  test("messages arrive as a signed push_batch the SDK verifies; a 2xx acknowledges them", async () => {
    const r = await receiver();
    const { mesh, sender, hook, senderPeer } = await webhookMesh(r);
    const acks = await sendMany(senderPeer, [sendFrame(hook.pubkey, { priority: "low" }), sendFrame(hook.pubkey)]);
    const ids = acks.map((a) => str(a.messageId));
    await r.waitFor((reqs) => reqs.flatMap(idsOf).length >= 2, 15_000, "both messages");

    const first = r.requests[0]!;
    expect(first.path).toBe("/events");
    expect(first.headers.get("content-type")).toBe("application/json");
    expect(first.headers.get("x-switchboard-attempt")).toBe("1");
    expect(first.headers.get("x-switchboard-signature")).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    for (const req of r.requests) {
      const batch = await verifyWebhook(SECRET, req.headers, req.body);
      expect(batch.type).toBe("push_batch");
    }
    await expect(verifyWebhook("another-secret-0123456789", first.headers, first.body)).rejects.toMatchObject({ code: "bad_signature" });
    await expect(verifyWebhook(SECRET, first.headers, `${first.body} `)).rejects.toMatchObject({ code: "bad_signature" });

    // A webhook member is idle: a low message goes out like the others.
    expect(r.requests.flatMap(idsOf)).toEqual(ids);
    expect(batchOf(first).messages[0]).toEqual({
      type: "push",
      messageId: ids[0]!,
      meshId: mesh.id,
      senderPubkey: sender.pubkey,
      targetSpec: hook.pubkey,
      priority: "low",
      nonce: expect.any(String),
      ciphertext: expect.any(String),
      createdAt: expect.stringMatching(ISO),
      replyTo: null,
      attempt: 1,
    });
    const settled = await stateBecomes(mesh.id, hook, (s) => s.queued === 0 && s.lastOutcome === "ok", "the batch acknowledged");
    expect(settled).toMatchObject({ failures: 0, lastStatus: 204, nextAttemptAt: null, lastAttemptAt: expect.stringMatching(ISO) });
    const status = await messageStatus<{ recipients: Array<{ state: string }> }>(broker.url, broker.adminToken, ids[1]!);
    expect(status.body.recipients.map((x) => x.state)).toEqual(["acked"]);
  });

  test("a queue of 250 goes out in batches of at most 100, in queue order", async () => {
    const r = await receiver();
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [sender, hook] = members as [SetupMember, SetupMember];
    const peer = await pool.connect(broker.wsUrl, sender, mesh.id);
    const acks = await sendMany(peer, Array.from({ length: 250 }, () => sendFrame(hook.pubkey)));
    await broker.admin.setWebhook(mesh.id, hook.id, r.url, SECRET);
    await r.waitFor((reqs) => reqs.flatMap(idsOf).length >= 250, 30_000, "250 messages");
    expect(r.requests.map((q) => idsOf(q).length)).toEqual([100, 100, 50]);
    expect(r.requests.flatMap(idsOf)).toEqual(acks.map((a) => str(a.messageId)));
  });

  test("large messages go in requests of at most 256 KiB of them, in queue order", async () => {
    const r = await receiver();
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [sender, hook] = members as [SetupMember, SetupMember];
    const peer = await pool.connect(broker.wsUrl, sender, mesh.id);
    const big = () => Buffer.from(crypto.getRandomValues(new Uint8Array(45_000))).toString("base64");
    const acks = await sendMany(peer, Array.from({ length: 10 }, () => sendFrame(hook.pubkey, { ciphertext: big() })));
    await broker.admin.setWebhook(mesh.id, hook.id, r.url, SECRET);
    await r.waitFor((reqs) => reqs.flatMap(idsOf).length >= 10, 30_000, "10 messages");
    // 60,000 characters each: four fit in 256 KiB, a fifth would not.
    expect(r.requests.map((q) => idsOf(q).length)).toEqual([4, 4, 2]);
    expect(r.requests.flatMap(idsOf)).toEqual(acks.map((a) => str(a.messageId)));
  });

  test("the 256 KiB are counted as the request's JSON carries them: escaped control characters count six bytes each", async () => {
    const r = await receiver();
    const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
    const [sender, hook] = members as [SetupMember, SetupMember];
    const peer = await pool.connect(broker.wsUrl, sender, mesh.id);
    // 10,500 characters, 63,000 bytes once escaped: four fit in 256 KiB, a fifth would not.
    const escaped = "\u0001".repeat(10_500);
    const acks = await sendMany(peer, Array.from({ length: 9 }, () => sendFrame(hook.pubkey, { ciphertext: escaped })));
    await broker.admin.setWebhook(mesh.id, hook.id, r.url, SECRET);
    await r.waitFor((reqs) => reqs.flatMap(idsOf).length >= 9, 30_000, "9 messages");
    expect(r.requests.map((q) => idsOf(q).length)).toEqual([4, 4, 1]);
    for (const q of r.requests) expect(Buffer.byteLength(q.body)).toBeLessThan(256 * 1024 + 4 * 1024);
    expect(r.requests.flatMap(idsOf)).toEqual(acks.map((a) => str(a.messageId)));
  });

  test("every non-2xx is retried (a 3xx is not followed); X-Switchboard-Attempt counts failures; backoff resets after a success", async () => {
    const answers = [500, 404, 302, 200, 503, 200];
    const r = await receiver((_, i) => ({
      status: answers[i] ?? 200,
      headers: answers[i] === 302 ? { location: "/elsewhere" } : undefined,
    }));
    const { mesh, hook, senderPeer } = await webhookMesh(r);
    const first = str((await senderPeer.send(hook.pubkey)).messageId);
    await stateBecomes(mesh.id, hook, (s) => s.lastOutcome === "ok", "the fourth attempt to succeed");

    const second = str((await senderPeer.send(hook.pubkey)).messageId);
    await r.waitFor((reqs) => reqs.length >= 6, 15_000, "six attempts");
    expect(r.requests.map((q) => [q.path, q.headers.get("x-switchboard-attempt"), idsOf(q)])).toEqual([
      ["/events", "1", [first]],
      ["/events", "2", [first]],
      ["/events", "3", [first]],
      ["/events", "4", [first]],
      ["/events", "1", [second]],
      ["/events", "2", [second]],
    ]);
    // The push's own attempt grows with every request that carried it.
    expect(r.requests.slice(0, 4).map((q) => batchOf(q).messages[0]!.attempt)).toEqual([1, 2, 3, 4]);
    expect(await stateBecomes(mesh.id, hook, (s) => s.queued === 0 && s.lastOutcome === "ok", "the retry to succeed")).toMatchObject({
      failures: 0,
      lastStatus: 200,
    });
  });

  test("a timeout and a refused connection are failures too; broker_webhook_requests_total counts each outcome from zero", async () => {
    const before = await scrape(broker.url);
    const keys = ["ok", "http_error", "timeout", "network"].map((o) => `broker_webhook_requests_total{outcome=${o}}`);
    for (const k of keys) expect(before.has(k)).toBe(true);
    let slow = true;
    const r = await receiver(() => ({ status: 200, delayMs: slow ? WEBHOOK_TIMEOUT_MS * 3 : 0 }));
    const { mesh, hook, senderPeer } = await webhookMesh(r);
    const id = str((await senderPeer.send(hook.pubkey)).messageId);
    await stateBecomes(mesh.id, hook, (s) => s.lastOutcome === "timeout", "a timeout");
    await r.stop();
    await stateBecomes(mesh.id, hook, (s) => s.lastOutcome === "network", "a refused connection");
    // The log says why, by the system's code alone (docs/http.md, Metrics). A
    // request under way as the endpoint stopped may have failed first, reset.
    const refused = await broker.process.waitForLog("webhook", 15_000, (l) => l.memberId === hook.id && l.cause === "ECONNREFUSED");
    expect(refused).toMatchObject({ outcome: "network", status: null });
    const networkLines = broker.process.logs.filter((l) => l.msg === "webhook" && l.memberId === hook.id && l.outcome === "network");
    for (const line of networkLines) expect(line.cause).toEqual(expect.stringMatching(/^[A-Z][A-Za-z_]+$/));
    slow = false;
    r.listen();
    await stateBecomes(mesh.id, hook, (s) => s.lastOutcome === "ok" && s.queued === 0, "delivery once it listens again");
    expect(r.requests.at(-1) && idsOf(r.requests.at(-1)!)).toEqual([id]);
    const grown = deltas(before, await scrape(broker.url), keys);
    // Each outcome this test caused was counted (http_error, which other tests cause, only had to be there from zero).
    for (const k of keys.filter((k) => !k.includes("http_error"))) expect(grown[k]).toBeGreaterThanOrEqual(1);
  });

  test("nothing is dropped before it expires; GET shows the failures meanwhile; an expired message is counted and never sent again", async () => {
    let failing = true;
    const r = await receiver(() => ({ status: failing ? 500 : 200 }));
    const { mesh, hook, senderPeer } = await webhookMesh(r);
    const before = await scrape(broker.url);
    // Its TTL leaves time, on a busy machine too, to see both counted in the queue before it expires.
    const [shortLived, durable] = await sendMany(senderPeer, [sendFrame(hook.pubkey, { ttlSeconds: 6 }), sendFrame(hook.pubkey)]);
    await waitUntil(
      async () => ((await scrape(broker.url)).get("broker_webhook_queue_depth") ?? 0) >= 2 || undefined,
      15_000,
      "broker_webhook_queue_depth to count the queued messages",
    );
    await waitUntil(
      async () => {
        const s = await messageStatus<{ recipients: Array<{ state: string }> }>(broker.url, broker.adminToken, str(shortLived!.messageId));
        return s.body.recipients[0]?.state === "expired" || undefined;
      },
      30_000,
      "the short-lived message to expire",
    );
    await waitUntil(
      async () => (deltas(before, await scrape(broker.url), ["broker_messages_expired_total"]).broker_messages_expired_total ?? 0) >= 1 || undefined,
      15_000,
      "the expiry to be counted",
    );
    // While it fails, GET shows why and when it is tried next.
    const failingState = await state(mesh.id, hook);
    expect(failingState).toMatchObject({ queued: 1, lastOutcome: "http_error", lastStatus: 500 });
    expect(failingState.failures).toBeGreaterThanOrEqual(1);
    expect(failingState.lastAttemptAt).toMatch(ISO);
    expect(failingState.nextAttemptAt).toMatch(ISO);
    const failedAttempts = r.requests.length;
    failing = false;
    await stateBecomes(mesh.id, hook, (s) => s.queued === 0 && s.lastOutcome === "ok", "the durable message delivered");
    expect(failedAttempts).toBeGreaterThan(1);
    expect(idsOf(r.requests.at(-1)!)).toEqual([str(durable!.messageId)]);
  });

  test("a webhook member's sockets receive nothing; DELETE hands its queue back to them", async () => {
    let failing = false;
    // The first request is answered slowly: meanwhile only a socket could take the next message.
    const r = await receiver((_, i) => ({ status: failing ? 500 : 200, delayMs: i === 0 ? WEBHOOK_TIMEOUT_MS / 2 : 0 }));
    const { mesh, hook, senderPeer } = await webhookMesh(r);
    const hookPeer = await pool.connect(broker.wsUrl, hook, mesh.id);
    const first = str((await senderPeer.send(hook.pubkey)).messageId);
    await r.waitFor((reqs) => reqs.length >= 1, 15_000, "the first request");
    const second = str((await senderPeer.send(hook.pubkey)).messageId);
    await r.waitFor((reqs) => reqs.flatMap(idsOf).includes(second), 15_000, "the second message at the webhook");
    await stateBecomes(mesh.id, hook, (s) => s.queued === 0, "both messages acknowledged");

    failing = true;
    const stays = str((await senderPeer.send(hook.pubkey)).messageId);
    await stateBecomes(mesh.id, hook, (s) => s.failures >= 1, "a failed attempt");
    expect((await broker.admin.raw("DELETE", path(mesh.id, hook))).status).toBe(200);
    // The queued message reaches the socket; those the webhook took never did.
    const pushes = await hookPeer.waitForPushes(1);
    expect(pushes.map((p) => p.messageId)).toEqual([stays]);
    expect(r.requests.flatMap(idsOf)).toEqual(expect.arrayContaining([first, second, stays]));
  });

  test("with WEBHOOK_ALLOW_PRIVATE=true a loopback endpoint is allowed (the default refuses it: see below)", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const res = await broker.admin.raw("PUT", path(mesh.id, members[0]!), { url: "http://localhost:9/x", secret: SECRET });
    expect(res.status).toBe(200);
  });
});

// The failing attempt is answered once the PUT has returned, under a timeout
// long enough that the PUT comes during the attempt on a busy machine too.
describe("an endpoint set during a failing attempt (WEBHOOK_TIMEOUT_MS=30000)", () => {
  const broker = useTestBroker({ WEBHOOK_ALLOW_PRIVATE: "true", ...TIMING, WEBHOOK_TIMEOUT_MS: "30000" });
  const { stateBecomes, webhookMesh } = webhookApi(broker);

  /** PUTs the endpoint, then lets the attempt under way be answered. */
  function putDuringAttempt() {
    let done!: () => void;
    const returned = new Promise<void>((resolve) => (done = resolve));
    const put = async (meshId: string, hook: SetupMember, url: string) => {
      try {
        expect((await broker.admin.raw("PUT", path(meshId, hook), { url, secret: SECRET })).status).toBe(200);
      } finally {
        done();
      }
    };
    return { returned, put };
  }

  test("a new endpoint starts afresh: the old endpoint's failure is not counted against it", async () => {
    const gate = putDuringAttempt();
    const failing = await receiver(() => ({ status: 500, until: gate.returned }));
    const healthy = await receiver(() => ({ status: 200 }));
    const { mesh, hook, senderPeer } = await webhookMesh(failing);
    await sendMany(senderPeer, [sendFrame(hook.pubkey)]);
    await failing.waitFor((reqs) => reqs.length === 1, 15_000, "the failing endpoint's request");
    await gate.put(mesh.id, hook, healthy.url);
    await healthy.waitFor((reqs) => reqs.length === 1, 15_000, "the new endpoint's request");
    expect(healthy.requests[0]!.headers.get("x-switchboard-attempt")).toBe("1");
    expect((await stateBecomes(mesh.id, hook, (s) => s.queued === 0, "the message acknowledged")).failures).toBe(0);
  });

  test("the same endpoint set again during its first attempt starts afresh: that attempt's failure is not counted", async () => {
    const gate = putDuringAttempt();
    // Its url, secret and failures (none) read as before the PUT: only when it became due tells.
    const r = await receiver((_, index) => (index === 0 ? { status: 500, until: gate.returned } : { status: 200 }));
    const { mesh, hook, senderPeer } = await webhookMesh(r);
    await sendMany(senderPeer, [sendFrame(hook.pubkey)]);
    await r.waitFor((reqs) => reqs.length === 1, 15_000, "the first request");
    await gate.put(mesh.id, hook, `${r.url}/events`);
    await r.waitFor((reqs) => reqs.length === 2, 15_000, "the request after the endpoint was set again");
    expect(r.requests[1]!.headers.get("x-switchboard-attempt")).toBe("1");
    expect((await stateBecomes(mesh.id, hook, (s) => s.queued === 0, "the message acknowledged")).failures).toBe(0);
  });

  test("the same endpoint set again starts afresh too: its failures are not counted on", async () => {
    const gate = putDuringAttempt();
    // Two quick failures, a third answered once the endpoint was set again, then success.
    const r = await receiver((_, index) => (index < 2 ? { status: 500 } : index === 2 ? { status: 500, until: gate.returned } : { status: 200 }));
    const { mesh, hook, senderPeer } = await webhookMesh(r);
    await sendMany(senderPeer, [sendFrame(hook.pubkey)]);
    await r.waitFor((reqs) => reqs.length === 3, 15_000, "the third request");
    expect(r.requests[2]!.headers.get("x-switchboard-attempt")).toBe("3");
    // As an operator would, to have it tried again now.
    await gate.put(mesh.id, hook, `${r.url}/events`);
    await r.waitFor((reqs) => reqs.length === 4, 15_000, "the request after the endpoint was set again");
    expect(r.requests[3]!.headers.get("x-switchboard-attempt")).toBe("1");
  });
});

// No catch-up within the test: what reaches a socket was announced.
describe("a webhook deleted during a failing attempt (CATCH_UP_INTERVAL_MS=600000)", () => {
  const broker = useTestBroker({ WEBHOOK_ALLOW_PRIVATE: "true", ...TIMING, WEBHOOK_TIMEOUT_MS: "30000", CATCH_UP_INTERVAL_MS: "600000" });
  const { webhookMesh } = webhookApi(broker);

  test("the batch the attempt gives back goes to the member's socket at once", async () => {
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const r = await receiver(() => ({ status: 500, until: answered }));
    const { mesh, hook, senderPeer } = await webhookMesh(r);
    const hookPeer = await pool.connect(broker.wsUrl, hook, mesh.id);
    const sent = str((await senderPeer.send(hook.pubkey)).messageId);
    await r.waitFor((reqs) => reqs.length === 1, 15_000, "the attempt");
    expect((await broker.admin.raw("DELETE", path(mesh.id, hook))).status).toBe(200);
    answer();
    expect((await hookPeer.waitForPushes(1, 10_000)).map((p) => p.messageId)).toEqual([sent]);
  });
});

describe("webhook targets with the default WEBHOOK_ALLOW_PRIVATE=false", () => {
  const broker = useTestBroker();

  test("private, loopback and link-local targets are refused; a public address is accepted", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 });
    const put = (url: string) => broker.admin.raw("PUT", `/v1/meshes/${mesh.id}/members/${members[0]!.id}/webhook`, { url, secret: SECRET });
    for (const url of [
      "http://127.0.0.1:8080/hook",
      "http://localhost/hook",
      "http://10.1.2.3/hook",
      "http://172.16.0.1/hook",
      "http://192.168.1.1/hook",
      "http://169.254.169.254/latest/meta-data",
      "http://[::1]/hook",
      "http://[fd00::1]/hook",
      "http://0.0.0.0/hook",
      "http://[::ffff:127.0.0.1]/hook",
    ]) {
      const res = await put(url);
      expect({ url, status: res.status, code: ((await res.json()) as ErrorBody).error?.code }).toEqual({ url, status: 400, code: "invalid" });
    }
    // An address literal needs no name lookup; nothing is queued, so nothing is sent.
    expect((await put("https://93.184.216.34/hook")).status).toBe(200);
  });

  test("a target refused at delivery is logged by its host, never with the URL's credentials, path or query", async () => {
    // Set while private targets were allowed; the broker restarted without that.
    const allowing = await TestBroker.start({ WEBHOOK_ALLOW_PRIVATE: "true" });
    const r = await receiver();
    const { mesh, members } = await setupMesh(allowing.admin, { members: ["sender", "hook"] });
    const [sender, hook] = members as [SetupMember, SetupMember];
    const target = new URL(r.url);
    const url = `http://user:pa55word@${target.host}/in/path-s3cret?token=query-s3cret`;
    await allowing.admin.setWebhook(mesh.id, hook.id, url, SECRET);
    await allowing.stop();
    const refusing = await TestBroker.start({ ...TIMING }, { backend: allowing.backend });
    try {
      const peer = await pool.connect(refusing.wsUrl, sender, mesh.id);
      await sendMany(peer, [sendFrame(hook.pubkey)]);
      const line = await refusing.process.waitForLog("webhook target refused");
      expect(line).toMatchObject({ memberId: hook.id, host: target.host, reason: expect.any(String) });
      expect(refusing.process.stderrText()).not.toMatch(/pa55word|s3cret/);
      expect(r.requests).toHaveLength(0);
    } finally {
      await refusing.dispose();
      await allowing.dispose();
    }
  });
});

describe.skipIf(backendKind !== "postgres")("webhooks over two instances (needs DATABASE_URL: instances share a Postgres server)", () => {
  let brokers: TestBroker[] = [];

  beforeAll(async () => {
    // A timeout well above the endpoint's delay: an abandoned request would still be in flight at the endpoint.
    const env = { WEBHOOK_ALLOW_PRIVATE: "true", SEND_RATE_LIMIT_PER_MIN: "100000", ...TIMING, WEBHOOK_TIMEOUT_MS: "5000" };
    const first = await TestBroker.start(env);
    brokers = [first, await TestBroker.start(env, { backend: first.backend })];
  });
  afterAll(async () => {
    for (const b of brokers.reverse()) await b.dispose();
  });

  test("one request in flight per member across instances; every message arrives, in order per sender", async () => {
    const admin = brokers[0]!.admin;
    const r = await receiver(() => ({ status: 200, delayMs: 150 }));
    const { mesh, members } = await setupMesh(admin, { members: 3 });
    const [a, b, hook] = members as [SetupMember, SetupMember, SetupMember];
    await admin.setWebhook(mesh.id, hook.id, r.url, SECRET);
    const peerA = await pool.connect(brokers[0]!.wsUrl, a, mesh.id);
    const peerB = await pool.connect(brokers[1]!.wsUrl, b, mesh.id);
    const sent: string[][] = [[], []];
    for (let round = 0; round < 10; round++) {
      const [fromA, fromB] = await Promise.all([
        sendMany(peerA, [sendFrame(hook.pubkey), sendFrame(hook.pubkey)]),
        sendMany(peerB, [sendFrame(hook.pubkey), sendFrame(hook.pubkey)]),
      ]);
      sent[0]!.push(...fromA.map((x) => str(x.messageId)));
      sent[1]!.push(...fromB.map((x) => str(x.messageId)));
      await Bun.sleep(50);
    }
    await r.waitFor((reqs) => new Set(reqs.flatMap(idsOf)).size >= 40, 30_000, "all 40 messages");
    expect(r.maxInFlight).toBe(1);
    const arrived = [...new Set(r.requests.flatMap(idsOf))];
    for (const ids of sent) expect(arrived.filter((id) => ids.includes(id))).toEqual(ids);
  });

  test("an HTTP send on one instance is delivered by webhook from either", async () => {
    const admin = brokers[1]!.admin;
    const r = await receiver();
    const { mesh, members } = await setupMesh(admin, { members: 2 });
    const [app, hook] = members as [SetupMember, SetupMember];
    await admin.setWebhook(mesh.id, hook.id, r.url, SECRET);
    const token = await admin.createApiToken(mesh.id, app.id);
    const sent = await postMessage<{ messageId: string }>(brokers[0]!.url, token, httpBody(hook.pubkey));
    await r.waitFor((reqs) => reqs.flatMap(idsOf).includes(sent.body.messageId), 15_000, "the message at the webhook");
  });

  test("a batch an instance gives back as it stops is taken by the other at once, not at its next refresh", async () => {
    // Refreshes a minute apart: only the give-back's announcement can wake B sooner.
    // A's request is held far longer than B may take to start on a busy
    // machine: only A's stop ends it.
    const env = { WEBHOOK_ALLOW_PRIVATE: "true", ...TIMING, CATCH_UP_INTERVAL_MS: "60000", WEBHOOK_TIMEOUT_MS: "120000" };
    const a = await TestBroker.start(env);
    let b: TestBroker | undefined;
    try {
      const r = await receiver((_, index) => (index === 0 ? { status: 200, delayMs: 90_000 } : { status: 200 }));
      const { mesh, members } = await setupMesh(a.admin, { members: 2 });
      const [sender, hook] = members as [SetupMember, SetupMember];
      await a.admin.setWebhook(mesh.id, hook.id, r.url, SECRET);
      const peer = await pool.connect(a.wsUrl, sender, mesh.id);
      const [sent] = await sendMany(peer, [sendFrame(hook.pubkey)]);
      await r.waitFor((reqs) => reqs.length === 1, 15_000, "A's request");
      // B learns of the webhook as it starts (before it listens), while A
      // holds the request open; its next refresh is a minute away.
      b = await TestBroker.start(env, { backend: a.backend });
      await peer.close();
      await a.stop();
      await r.waitFor((reqs) => reqs.length === 2, 15_000, "B's request with the batch A gave back");
      expect(idsOf(r.requests[1]!)).toEqual([str(sent!.messageId)]);
      // Cut short by the stop, not failed: no failure is counted.
      expect(r.requests[1]!.headers.get("x-switchboard-attempt")).toBe("1");
    } finally {
      await b?.dispose();
      await a.dispose();
    }
  });

  test("deleted and set again on another instance while a request is under way: the new endpoint waits for it, then gets its batch before newer messages", async () => {
    // A's request is held far longer than B may take to start on a busy machine: only the test's answer ends it.
    const env = { WEBHOOK_ALLOW_PRIVATE: "true", ...TIMING, WEBHOOK_TIMEOUT_MS: "120000" };
    const a = await TestBroker.start(env);
    let b: TestBroker | undefined;
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    try {
      const old = await receiver(() => ({ status: 500, until: answered }));
      const fresh = await receiver(() => ({ status: 200 }));
      const { mesh, members } = await setupMesh(a.admin, { members: 2 });
      const [sender, hook] = members as [SetupMember, SetupMember];
      await a.admin.setWebhook(mesh.id, hook.id, old.url, SECRET);
      const [first] = await sendMany(await pool.connect(a.wsUrl, sender, mesh.id), [sendFrame(hook.pubkey)]);
      await old.waitFor((reqs) => reqs.length === 1, 15_000, "A's request");
      b = await TestBroker.start(env, { backend: a.backend });
      expect((await b.admin.raw("DELETE", path(mesh.id, hook))).status).toBe(200);
      expect((await b.admin.raw("PUT", path(mesh.id, hook), { url: fresh.url, secret: SECRET })).status).toBe(200);
      const [newer] = await sendMany(await pool.connect(b.wsUrl, sender, mesh.id), [sendFrame(hook.pubkey)]);
      // Time for the request B must not make yet (it made it at once, before the new row took the old request's lease).
      await Bun.sleep(1_000);
      expect(fresh.requests).toHaveLength(0);
      answer();
      await fresh.waitFor((reqs) => reqs.flatMap(idsOf).length >= 2, 15_000, "both messages at the new endpoint");
      expect(fresh.requests.flatMap(idsOf)).toEqual([str(first!.messageId), str(newer!.messageId)]);
      expect(fresh.requests[0]!.headers.get("x-switchboard-attempt")).toBe("1");
    } finally {
      answer();
      await b?.dispose();
      await a.dispose();
    }
  });
});

describe("the queue gauges of an instance that just started (HOUSEKEEPING_INTERVAL_MS=3600000)", () => {
  const broker = useTestBroker({ WEBHOOK_ALLOW_PRIVATE: "true", HOUSEKEEPING_INTERVAL_MS: "3600000" });

  test("count the queue it finds at once, not 0 until the first refresh an hour later", async () => {
    const r = await receiver(() => ({ status: 500 }));
    const { mesh, members } = await setupMesh(broker.admin, { members: 3 });
    const [sender, offline, hook] = members as [SetupMember, SetupMember, SetupMember];
    await broker.admin.setWebhook(mesh.id, hook.id, r.url, SECRET);
    const peer = await pool.connect(broker.wsUrl, sender, mesh.id);
    await sendMany(peer, [sendFrame(offline.pubkey), sendFrame(offline.pubkey), sendFrame(hook.pubkey)]);
    await pool.closeAll();
    expect(await broker.stop()).toBe(0);
    await broker.start();
    await waitUntil(
      async () => {
        const metrics = await scrape(broker.url);
        return metrics.get("broker_queue_depth") === 3 && metrics.get("broker_webhook_queue_depth") === 1 ? true : undefined;
      },
      15_000,
      "both gauges to count the queue: 3 deliveries, 1 of them to the webhook",
    );
  });
});
