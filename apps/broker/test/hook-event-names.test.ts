// Hook event names on POST /hook/set-status: StopFailure (a turn that ended on
// an API error) is idle, and names a plain object inherits — "toString",
// "__proto__", … — are not event names: without a status they are a 400 and
// change nothing.
import { afterEach, expect, test } from "bun:test";
import { PeerPool, setupMesh, useTestBroker } from "@switchboard/testkit";
import { expectHookError, postHook, statusSeenBy } from "./support/status.ts";

const broker = useTestBroker();
const pool = new PeerPool();
afterEach(() => pool.closeAll());

async function sessionWithToken() {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["agent"] });
  const member = members[0]!;
  const token = await broker.admin.createHookToken(mesh.id, member.id);
  const cwd = `/home/dev/${mesh.slug}`;
  const peer = await pool.connect(broker.wsUrl, member, mesh.id, { cwd });
  return { token, cwd, peer };
}

test("StopFailure (a turn ended by an API error) sets idle like Stop", async () => {
  const { token, cwd, peer } = await sessionWithToken();
  const input = { session_id: peer.sessionId, cwd, transcript_path: "/tmp/t.jsonl" };
  const working = await postHook(broker.url, { token, body: { ...input, hook_event_name: "UserPromptSubmit", prompt: "go" } });
  expect(working.status).toBe(200);
  expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "working", statusSource: "hook" });
  const failed = await postHook(broker.url, {
    token,
    body: { ...input, hook_event_name: "StopFailure", error_type: "rate_limit", error_message: "429" },
  });
  expect(failed).toEqual({ status: 200, body: { ok: true, presence_id: peer.helloAck?.presenceId } });
  expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "idle", statusSource: "hook" });
});

test("names inherited from Object.prototype are refused with 400 and change nothing", async () => {
  const { token, cwd, peer } = await sessionWithToken();
  const working = await postHook(broker.url, { token, body: { session_id: peer.sessionId, cwd, hook_event_name: "UserPromptSubmit" } });
  expect(working.status).toBe(200);
  for (const name of ["toString", "__proto__", "constructor", "hasOwnProperty", "valueOf"]) {
    const answer = await postHook(broker.url, { token, body: { session_id: peer.sessionId, cwd, hook_event_name: name } });
    expectHookError(answer, 400);
    expect({ name, error: answer.body.error }).toEqual({ name, error: "invalid" });
  }
  // Every refused request was answered before this read: nothing moved the status.
  expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "working", statusSource: "hook" });
  // The broker is still serving hooks normally afterwards.
  const stop = await postHook(broker.url, { token, body: { session_id: peer.sessionId, cwd, hook_event_name: "Stop" } });
  expect(stop.status).toBe(200);
  expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "idle", statusSource: "hook" });
});
