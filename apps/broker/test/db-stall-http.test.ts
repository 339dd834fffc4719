// HTTP routes while the database stalls: connections stay open and nothing
// comes back, as in a network partition (a stopped server, which refuses
// connections, is db-outage.test.ts). Each route answers within its deadline
// instead of leaving the caller to Bun's idle timeout or to no answer at all.
import { describe, expect, test } from "bun:test";
import { backendKind, setupMesh, waitUntil } from "@switchboard/testkit";
import { brokerBehindProxy } from "./support/behind-proxy.ts";

/** Longer than the broker's answer deadline and Bun's idle timeout: a request still open then got no answer. */
const GIVE_UP_MS = 30_000;

async function ask(url: string, init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown> } | string> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(GIVE_UP_MS) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch (error) {
    return `no answer: ${String(error)}`;
  }
}

describe.skipIf(backendKind !== "postgres")("HTTP while the database stalls (needs DATABASE_URL)", () => {
  test("admin, hook and message routes answer 503, or 500 for a send that may be stored; the log stays JSON", async () => {
    const { broker, proxy, dispose } = await brokerBehindProxy();
    try {
      const { mesh, members } = await setupMesh(broker.admin, { members: 2 });
      const [a, b] = members as [(typeof members)[0], (typeof members)[0]];
      const hookToken = await broker.admin.createHookToken(mesh.id, a.id);
      const apiToken = await broker.admin.createApiToken(mesh.id, a.id);
      const admin = { authorization: `Bearer ${broker.adminToken}`, "content-type": "application/json" };
      const send = () =>
        ask(`${broker.url}/v1/messages`, {
          method: "POST",
          headers: { authorization: `Bearer ${apiToken}`, "content-type": "application/json" },
          body: JSON.stringify({ targetSpec: b.pubkey, nonce: "n", ciphertext: "aGk=" }),
        });
      // The pool's connections are open and known good: the stalled requests go out on them.
      const first = await send();
      expect(first).toMatchObject({ status: 201 });

      proxy.stall();
      const [created, listed, hook, sent, status] = await Promise.all([
        ask(`${broker.url}/v1/meshes`, { method: "POST", headers: admin, body: JSON.stringify({ slug: "during-the-stall" }) }),
        ask(`${broker.url}/v1/meshes`, { headers: admin }),
        ask(`${broker.url}/hook/set-status`, {
          method: "POST",
          headers: { authorization: `Bearer ${hookToken}`, "content-type": "application/json" },
          body: JSON.stringify({ cwd: "/home/dev/project", status: "working" }),
        }),
        send(),
        ask(`${broker.url}/v1/messages/${typeof first === "string" ? "" : String(first.body.messageId)}`, { headers: { authorization: `Bearer ${apiToken}` } }),
      ]);
      const unavailable = { status: 503, body: { error: { code: "unavailable" } } };
      expect(created).toMatchObject(unavailable);
      expect(listed).toMatchObject(unavailable);
      expect(status).toMatchObject(unavailable);
      expect(hook).toMatchObject({ status: 503, body: { ok: false, error: "unavailable" } });
      // Its statement may commit once the database answers again: not "nothing was stored"; sent without a key, a retry may store it twice.
      const undecided = "the message may have been stored: a retry without an Idempotency-Key may store it twice";
      expect(sent).toMatchObject({ status: 500, body: { error: { code: "internal", message: expect.stringContaining(undecided) } } });

      proxy.resume();
      await waitUntil(async () => (await fetch(`${broker.url}/health`)).status === 200, 30_000, "/health 200 after the stall");
      expect(broker.process.exitCode).toBeNull();
      const notJson = broker.process
        .stderrText()
        .split("\n")
        .filter((line) => line !== "" && !line.startsWith("{"));
      expect(notJson).toEqual([]);
    } finally {
      await dispose();
    }
  });
});
