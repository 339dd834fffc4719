// An instance sends at most 64 webhook requests at once. Endpoints that hang
// until the timeout, and are tried again as soon as their backoff allows,
// held all of them: every other member's webhook waited a timeout for a
// slot. Members whose last request failed now take at most half of them:
// with every member failing, requests start at half the rate.
import { describe, expect, test } from "bun:test";
import { setupMesh, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { httpBody, postMessage } from "./support/http-api.ts";
import { scrape } from "./support/messaging.ts";

const SECRET = "webhook-secret-0123456789";
/** More than the 64 requests an instance sends at once. */
const HANGING = 70;
const FAILING_AT_ONCE = 32;

describe("webhook requests of members whose endpoints hang", () => {
  const broker = useTestBroker({
    WEBHOOK_ALLOW_PRIVATE: "true",
    WEBHOOK_TIMEOUT_MS: "1000",
    WEBHOOK_BACKOFF_MIN_MS: "10",
    WEBHOOK_BACKOFF_MAX_MS: "20",
    SEND_RATE_LIMIT_PER_MIN: "100000",
  });

  test(`take at most ${FAILING_AT_ONCE} of an instance's requests at once, once each has failed, so the others find room`, async () => {
    // Requests that arrived while measuring: a slot starts one at most every timeout.
    let started = 0;
    let measuring = false;
    const tried = new Set<string>();
    // Answers only when the broker gives up on the request (its timeout).
    const hanging = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      idleTimeout: 0,
      fetch(req) {
        tried.add(new URL(req.url).pathname);
        if (measuring) started++;
        return new Promise<Response>((resolve) => req.signal.addEventListener("abort", () => resolve(new Response(null, { status: 503 }))));
      },
    });
    try {
      const { mesh, members } = await setupMesh(broker.admin, { members: HANGING + 1 });
      const [sender, ...hooked] = members as [SetupMember, ...SetupMember[]];
      for (const [i, m] of hooked.entries()) await broker.admin.setWebhook(mesh.id, m.id, `http://127.0.0.1:${hanging.port}/${i}`, SECRET);
      const token = await broker.admin.createApiToken(mesh.id, sender.id);
      for (const m of hooked) expect((await postMessage(broker.url, token, httpBody(m.pubkey))).status).toBe(201);

      const timeouts = async () => (await scrape(broker.url)).get("broker_webhook_requests_total{outcome=timeout}") ?? 0;
      // Every endpoint has had a request time out: each member is failing from here on.
      await waitUntil(async () => (tried.size === HANGING && (await timeouts()) >= HANGING) || undefined, 60_000, "a timeout at every endpoint");
      // Counted by the requests that arrive, not by those the server still
      // holds open: it learns late (on a busy machine) that one was given up.
      const since = Date.now();
      measuring = true;
      await Bun.sleep(8000);
      measuring = false;
      // Each request holds its slot for the whole timeout (1 s) at least: a
      // slot starts one per second of the window, one more at each of its
      // edges (arrivals lag the broker's start a little).
      const seconds = Math.ceil((Date.now() - since) / 1000);
      expect(started).toBeLessThanOrEqual(FAILING_AT_ONCE * (seconds + 2));
    } finally {
      hanging.stop(true);
    }
  });
});
