// A receiver's Retry-After on a 429 or 503 (docs/http.md, "Retry schedule"):
// the next attempt waits at least that long, in seconds or as an HTTP date,
// never past WEBHOOK_BACKOFF_MAX_MS; other statuses keep the plain backoff.
// Read from the schedule GET shows (nextAttemptAt against lastAttemptAt),
// with backoff bounds far below the times asked for, so only the header
// can account for them.
import { afterEach, describe, expect, test } from "bun:test";
import { PeerPool, setupMesh, useTestBroker, waitUntil, WebhookReceiver, type SetupMember } from "@switchboard/testkit";
import { sendFrame, sendMany } from "./support/messaging.ts";

const SECRET = "webhook-secret-0123456789";
const MAX_MS = 300_000;

interface Schedule {
  queued: number;
  failures: number;
  lastAttemptAt: string | null;
  lastStatus: number | null;
  nextAttemptAt: string | null;
}

const pool = new PeerPool();
let receiver: WebhookReceiver | undefined;
afterEach(async () => {
  await pool.closeAll();
  await receiver?.stop();
});

describe("Retry-After from a webhook receiver", () => {
  const broker = useTestBroker({ WEBHOOK_ALLOW_PRIVATE: "true", WEBHOOK_BACKOFF_MIN_MS: "100", WEBHOOK_BACKOFF_MAX_MS: String(MAX_MS) });

  test("on a 429 or 503 is the least the next attempt waits, capped at the backoff's maximum; a 500's is not", async () => {
    // Each path answers its own way, every time (it is retried only after the test).
    const answers: Record<string, { status: number; retryAfter: () => string }> = {
      "/seconds": { status: 503, retryAfter: () => "120" },
      "/date": { status: 429, retryAfter: () => new Date(Date.now() + 200_000).toUTCString() },
      "/capped": { status: 503, retryAfter: () => "100000" },
      "/other": { status: 500, retryAfter: () => "120" },
    };
    receiver = await WebhookReceiver.start((req) => {
      const answer = answers[req.path]!;
      return { status: answer.status, headers: { "retry-after": answer.retryAfter() } };
    });
    const paths = Object.keys(answers);
    const { mesh, members } = await setupMesh(broker.admin, { members: 1 + paths.length });
    const [sender, ...hooks] = members as [SetupMember, ...SetupMember[]];
    for (const [i, path] of paths.entries()) await broker.admin.setWebhook(mesh.id, hooks[i]!.id, `${receiver.url}${path}`, SECRET);
    const peer = await pool.connect(broker.wsUrl, sender, mesh.id);
    await sendMany(peer, hooks.map((h) => sendFrame(h.pubkey)));

    /** Seconds from the failed attempt's start to the next one, once the failure is recorded. */
    const waitAfterFailure = async (hook: SetupMember): Promise<number> => {
      const s = await waitUntil(
        async () => {
          const res = await broker.admin.raw("GET", `/v1/meshes/${mesh.id}/members/${hook.id}/webhook`);
          const state = (await res.json()) as Schedule;
          return state.failures >= 1 ? state : undefined;
        },
        15_000,
        "a failed attempt recorded",
      );
      expect(s.queued).toBe(1);
      return (Date.parse(s.nextAttemptAt!) - Date.parse(s.lastAttemptAt!)) / 1000;
    };
    const [seconds, date, capped, other] = await Promise.all(hooks.map(waitAfterFailure));
    expect(seconds).toBeGreaterThanOrEqual(120);
    expect(seconds).toBeLessThan(150);
    // An HTTP date has whole seconds: up to one is lost to it.
    expect(date).toBeGreaterThanOrEqual(198);
    expect(date).toBeLessThan(230);
    expect(capped).toBeGreaterThanOrEqual(MAX_MS / 1000);
    expect(capped).toBeLessThan(MAX_MS / 1000 + 30);
    // The plain backoff after a first failure: at most WEBHOOK_BACKOFF_MIN_MS (and the time to record it).
    expect(other).toBeLessThan(30);
    // Those that asked were tried once and are waiting, not dropped.
    expect(receiver.requests.map((r) => r.path).filter((p) => p !== "/other").sort()).toEqual(["/capped", "/date", "/seconds"]);
  });
});
