// A request whose body takes longer to arrive than the answer deadline
// (ANSWER_DEADLINE_MS) is answered by what the broker made of it: the
// deadline bounds the wait on the database, and reading the body does not
// count against it (transport/http/answer-deadline.ts). Before, such a send
// was answered as undecided (500), and a hook as 503, each blaming a
// database that had not yet been asked. Bun ends a request whose body comes
// slower than 16 KiB/s past its idle timeout (10 s), so the bodies here are
// large and steady: 2 MiB over 12 s. (An admin body, at most 64 KiB, cannot
// take that long; the admin routes count their deadline the same way.)
import { afterAll, describe, expect, test } from "bun:test";
import { setupMesh, TestPeer, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { ANSWER_DEADLINE_MS } from "../src/transport/http/respond.ts";
import { statusSeenBy } from "./support/status.ts";

const BODY_BYTES = 2 * 1024 * 1024;
const broker = useTestBroker({ MAX_MESSAGE_BYTES: String(2 * BODY_BYTES) });
const peers: TestPeer[] = [];
afterAll(async () => {
  for (const peer of peers) await peer.close();
});

/** The text as a body whose last part comes `overMs` after its first, a part every 500 ms. */
function slowBody(text: string, overMs: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  const parts = Math.ceil(overMs / 500) + 1;
  const size = Math.ceil(bytes.length / parts);
  return new ReadableStream<Uint8Array>({
    async start(controller) {
      for (let i = 0; i < parts; i++) {
        if (i > 0) await Bun.sleep(500);
        controller.enqueue(bytes.subarray(i * size, (i + 1) * size));
      }
      controller.close();
    },
  });
}

async function slowPost(path: string, token: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${broker.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: slowBody(JSON.stringify(body), ANSWER_DEADLINE_MS + 4000),
  });
  return { status: res.status, body: await res.json() };
}

describe("a body slower than the answer deadline", () => {
  test("a send and a hook each get their own answer, not the deadline's", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["app", "agent"] });
    const [app, agent] = members as [SetupMember, SetupMember];
    const cwd = `/home/dev/${mesh.slug}`;
    const peer = await TestPeer.connect(broker.wsUrl, { identity: agent.identity, meshId: mesh.id, cwd });
    peers.push(peer);
    const apiToken = await broker.admin.createApiToken(mesh.id, app.id);
    const hookToken = await broker.admin.createHookToken(mesh.id, agent.id);
    // Priority now: the hook beside it sets the agent working, and a next message would be held for its turn's end
    // whenever the status lands before the send.
    const [sent, hooked] = await Promise.all([
      slowPost("/v1/messages", apiToken, {
        targetSpec: agent.pubkey,
        priority: "now",
        nonce: "plain",
        ciphertext: Buffer.alloc((BODY_BYTES * 3) / 4).toString("base64"),
      }),
      slowPost("/hook/set-status", hookToken, { cwd, session_id: peer.sessionId, status: "working", pad: "x".repeat(BODY_BYTES) }),
    ]);
    expect(sent).toMatchObject({ status: 201, body: { queued: true, recipients: 1 } });
    expect(hooked).toMatchObject({ status: 200, body: { ok: true } });
    const [push] = await peer.waitForPushes(1);
    expect(push?.messageId).toBe((sent.body as { messageId: string }).messageId);
    expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "working", statusSource: "hook" });
  });
});
