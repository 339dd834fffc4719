// Status and priority rules (PROTOCOL.md §2) against real broker processes:
// which priorities a presence receives in each status, when held messages go
// out, and which status source may overwrite which.
import { afterEach, describe, expect, test } from "bun:test";
import {
  setupMesh,
  TestPeer,
  useTestBroker,
  type ConnectOptions,
  type Frame,
  type SetupMember,
  type TestBroker,
} from "@switchboard/testkit";
import { scrape } from "./support/messaging.ts";
import { postHook, setStatus, statusSeenBy } from "./support/status.ts";

// A short window, for what happens once it has passed; the TTL is what the
// "within" steps of its tests have to run in: 4 s, not 2, so a loaded machine
// does not run past it before the checks do.
const WINDOW_MS = 4000;
const LONG_WINDOW_SECONDS = 600;
// Past the fresh window with a margin for the database clock and the request itself.
const PAST_WINDOW_MS = WINDOW_MS + 400;
const STATUS_TTL_SECONDS = 4;
const SWEEP_INTERVAL_MS = 100;
const DELIVERY_TIMEOUT_MS = 15_000;

const openPeers: TestPeer[] = [];
afterEach(async () => {
  await Promise.all(openPeers.splice(0).map((p) => p.close()));
});

async function connect(env: TestBroker, member: SetupMember, meshId: string, options: Partial<ConnectOptions> = {}): Promise<TestPeer> {
  const peer = await TestPeer.connect(env.wsUrl, { identity: member.identity, meshId, autoAck: true, ...options });
  openPeers.push(peer);
  return peer;
}

async function sendTo(sender: TestPeer, target: SetupMember, priority: "now" | "next" | "low"): Promise<string> {
  const ack = await sender.send(target.pubkey, { priority });
  expect(ack).toMatchObject({ type: "ack", queued: true, recipients: 1 });
  return String(ack.messageId);
}

const pushIds = (peer: TestPeer) => peer.pushes().map((p: Frame) => String(p.messageId));

/** A mesh with a sender and a receiver, both connected; the receiver with a known session and cwd. */
async function senderAndReceiver(env: TestBroker) {
  const { mesh, members } = await setupMesh(env.admin, { members: ["sender", "receiver"] });
  const [senderMember, receiverMember] = members as [SetupMember, SetupMember];
  const sessionId = `sess-${crypto.randomUUID()}`;
  const cwd = `/home/dev/${mesh.slug}`;
  const sender = await connect(env, senderMember, mesh.id);
  const receiver = await connect(env, receiverMember, mesh.id, { sessionId, cwd, pid: 4100 });
  return { mesh, sender, receiver, receiverMember, sessionId, cwd };
}

describe(`priorities and status sources (HOOK_FRESH_WINDOW_SECONDS=${WINDOW_MS / 1000})`, () => {
  const env = useTestBroker({ HOOK_FRESH_WINDOW_SECONDS: String(WINDOW_MS / 1000) });

  test("an idle presence receives now, next and low", async () => {
    const { sender, receiver, receiverMember } = await senderAndReceiver(env);
    expect(receiver.helloAck?.status).toBe("idle");
    const ids = [
      await sendTo(sender, receiverMember, "now"),
      await sendTo(sender, receiverMember, "next"),
      await sendTo(sender, receiverMember, "low"),
    ];
    await receiver.waitForPushes(3, DELIVERY_TIMEOUT_MS);
    expect(pushIds(receiver).sort()).toEqual([...ids].sort());
  });

  for (const held of ["working", "dnd"] as const) {
    test(`a ${held} presence receives only now; next and low wait until it is idle`, async () => {
      const { sender, receiver, receiverMember } = await senderAndReceiver(env);
      expect(await setStatus(receiver, held)).toEqual({ type: "status", status: held, statusSource: "manual" });

      const nextId = await sendTo(sender, receiverMember, "next");
      const lowId = await sendTo(sender, receiverMember, "low");
      // Queued behind next and low, now goes out first: by its push the broker has passed over both.
      const nowId = await sendTo(sender, receiverMember, "now");
      await receiver.waitForPushes(1, DELIVERY_TIMEOUT_MS);
      expect(pushIds(receiver)).toEqual([nowId]);

      expect(await setStatus(receiver, "idle")).toEqual({ type: "status", status: "idle", statusSource: "manual" });
      await receiver.waitForPushes(3, DELIVERY_TIMEOUT_MS);
      expect(pushIds(receiver).sort()).toEqual([nowId, nextId, lowId].sort());
    });
  }

  test("a reconnect of the session keeps its dnd or working: held messages stay held", async () => {
    const { mesh, sender, receiver, receiverMember, sessionId, cwd } = await senderAndReceiver(env);
    expect(await setStatus(receiver, "dnd")).toMatchObject({ status: "dnd" });
    const nextId = await sendTo(sender, receiverMember, "next");
    await receiver.close();
    // Same member, same session: a new socket after a drop or a broker restart.
    const again = await connect(env, receiverMember, mesh.id, { sessionId, cwd, pid: 4100 });
    expect(again.helloAck?.status).toBe("dnd");
    const nowId = await sendTo(sender, receiverMember, "now");
    await again.waitForPushes(1, DELIVERY_TIMEOUT_MS);
    expect(pushIds(again)).toEqual([nowId]);

    // A hook's working is kept the same way; its end lets the held message out.
    expect(await setStatus(again, "idle")).toMatchObject({ status: "idle" });
    await again.waitForPushes(2, DELIVERY_TIMEOUT_MS);
    const token = await env.admin.createHookToken(mesh.id, receiverMember.id);
    expect((await postHook(env.url, { token, body: { cwd, status: "working", session_id: sessionId } })).status).toBe(200);
    await again.close();
    const third = await connect(env, receiverMember, mesh.id, { sessionId, cwd, pid: 4100 });
    expect(third.helloAck?.status).toBe("working");
    const laterId = await sendTo(sender, receiverMember, "next");
    const marker = await sendTo(sender, receiverMember, "now");
    await third.waitForPushes(1, DELIVERY_TIMEOUT_MS);
    expect(pushIds(third)).toEqual([marker]);
    expect((await postHook(env.url, { token, body: { cwd, status: "idle", session_id: sessionId } })).status).toBe(200);
    await third.waitForPushes(2, DELIVERY_TIMEOUT_MS);
    expect(pushIds(third)).toEqual([marker, laterId]);
    expect(pushIds(again)).toEqual([nowId, nextId]);
  });

  test("held messages go out when a hook sets idle", async () => {
    const { mesh, sender, receiver, receiverMember, sessionId, cwd } = await senderAndReceiver(env);
    const token = await env.admin.createHookToken(mesh.id, receiverMember.id);
    const working = await postHook(env.url, { token, body: { cwd, status: "working", session_id: sessionId } });
    expect(working).toEqual({ status: 200, body: { ok: true, presence_id: receiver.helloAck?.presenceId } });

    const nextId = await sendTo(sender, receiverMember, "next");
    // A later now passes the working status: by its push the held next was passed over.
    const nowId = await sendTo(sender, receiverMember, "now");
    await receiver.waitForPushes(1, DELIVERY_TIMEOUT_MS);
    expect(pushIds(receiver)).toEqual([nowId]);

    const idle = await postHook(env.url, { token, body: { cwd, status: "idle", session_id: sessionId } });
    expect(idle.status).toBe(200);
    await receiver.waitForPushes(2, DELIVERY_TIMEOUT_MS);
    expect(pushIds(receiver)).toEqual([nowId, nextId]);
  });

  test("after the window, a manual set_status overwrites a hook status", async () => {
    const { mesh, sender, receiver, receiverMember, sessionId, cwd } = await senderAndReceiver(env);
    const token = await env.admin.createHookToken(mesh.id, receiverMember.id);
    expect((await postHook(env.url, { token, body: { cwd, status: "working", session_id: sessionId } })).status).toBe(200);
    await Bun.sleep(PAST_WINDOW_MS);
    expect(await setStatus(receiver, "idle", "manual")).toEqual({ type: "status", status: "idle", statusSource: "manual" });
    expect(await statusSeenBy(sender, sessionId)).toEqual({ status: "idle", statusSource: "manual" });
  });

  test("after the window, a jsonl set_status overwrites a manual status", async () => {
    const { sender, receiver, sessionId } = await senderAndReceiver(env);
    expect(await setStatus(receiver, "working", "manual")).toEqual({ type: "status", status: "working", statusSource: "manual" });
    await Bun.sleep(PAST_WINDOW_MS);
    expect(await setStatus(receiver, "idle", "jsonl")).toEqual({ type: "status", status: "idle", statusSource: "jsonl" });
    expect(await statusSeenBy(sender, sessionId)).toEqual({ status: "idle", statusSource: "jsonl" });
  });

  test("dnd is left only by a manual set_status, even after the window", async () => {
    const { mesh, sender, receiver, receiverMember, sessionId, cwd } = await senderAndReceiver(env);
    const token = await env.admin.createHookToken(mesh.id, receiverMember.id);
    expect(await setStatus(receiver, "dnd")).toEqual({ type: "status", status: "dnd", statusSource: "manual" });
    await Bun.sleep(PAST_WINDOW_MS);
    await cannotLeaveDnd(env, { sender, receiver, token, sessionId, cwd });
    expect(await setStatus(receiver, "idle", "manual")).toEqual({ type: "status", status: "idle", statusSource: "manual" });
    expect(await statusSeenBy(sender, sessionId)).toEqual({ status: "idle", statusSource: "manual" });
  });
});

// What a fresh status beats is checked against a window no loaded machine runs
// past; what happens after a window, above, against a short one.
describe(`status sources within the window (HOOK_FRESH_WINDOW_SECONDS=${LONG_WINDOW_SECONDS})`, () => {
  const env = useTestBroker({ HOOK_FRESH_WINDOW_SECONDS: String(LONG_WINDOW_SECONDS) });

  test("hook beats manual: a manual set_status does not overwrite a fresh hook status", async () => {
    const { mesh, sender, receiver, receiverMember, sessionId, cwd } = await senderAndReceiver(env);
    const token = await env.admin.createHookToken(mesh.id, receiverMember.id);
    expect((await postHook(env.url, { token, body: { cwd, status: "working", session_id: sessionId } })).status).toBe(200);
    expect(await setStatus(receiver, "idle", "manual")).toEqual({ type: "status", status: "working", statusSource: "hook" });
    expect(await setStatus(receiver, "idle")).toEqual({ type: "status", status: "working", statusSource: "hook" });
    expect(await statusSeenBy(sender, sessionId)).toEqual({ status: "working", statusSource: "hook" });
  });

  test("manual beats jsonl: a jsonl set_status does not overwrite a fresh manual status", async () => {
    const { sender, receiver, sessionId } = await senderAndReceiver(env);
    expect(await setStatus(receiver, "working", "manual")).toEqual({ type: "status", status: "working", statusSource: "manual" });
    expect(await setStatus(receiver, "idle", "jsonl")).toEqual({ type: "status", status: "working", statusSource: "manual" });
    expect(await statusSeenBy(sender, sessionId)).toEqual({ status: "working", statusSource: "manual" });
  });

  test("hook beats jsonl within the window", async () => {
    const { mesh, receiver, receiverMember, sessionId, cwd } = await senderAndReceiver(env);
    const token = await env.admin.createHookToken(mesh.id, receiverMember.id);
    expect((await postHook(env.url, { token, body: { cwd, status: "working", session_id: sessionId } })).status).toBe(200);
    expect(await setStatus(receiver, "idle", "jsonl")).toEqual({ type: "status", status: "working", statusSource: "hook" });
  });

  test("a reconnect keeps a fresh hook idle as a hook status: a jsonl working does not overwrite it", async () => {
    const { mesh, sender, receiver, receiverMember, sessionId, cwd } = await senderAndReceiver(env);
    const token = await env.admin.createHookToken(mesh.id, receiverMember.id);
    expect((await postHook(env.url, { token, body: { cwd, status: "idle", session_id: sessionId } })).status).toBe(200);
    await receiver.close();
    const again = await connect(env, receiverMember, mesh.id, { sessionId, cwd, pid: 4100 });
    expect(await setStatus(again, "working", "jsonl")).toEqual({ type: "status", status: "idle", statusSource: "hook" });
    expect(await statusSeenBy(sender, sessionId)).toEqual({ status: "idle", statusSource: "hook" });
  });

  test("a manual dnd always applies, even over a fresh hook status", async () => {
    const { mesh, sender, receiver, receiverMember, sessionId, cwd } = await senderAndReceiver(env);
    const token = await env.admin.createHookToken(mesh.id, receiverMember.id);
    expect((await postHook(env.url, { token, body: { cwd, status: "working", session_id: sessionId } })).status).toBe(200);
    expect(await setStatus(receiver, "dnd")).toEqual({ type: "status", status: "dnd", statusSource: "manual" });
    expect(await statusSeenBy(sender, sessionId)).toEqual({ status: "dnd", statusSource: "manual" });
  });

  test("dnd is left only by a manual set_status: hooks and jsonl never clear it", async () => {
    const { mesh, sender, receiver, receiverMember, sessionId, cwd } = await senderAndReceiver(env);
    const token = await env.admin.createHookToken(mesh.id, receiverMember.id);
    expect(await setStatus(receiver, "dnd")).toEqual({ type: "status", status: "dnd", statusSource: "manual" });
    await cannotLeaveDnd(env, { sender, receiver, token, sessionId, cwd });
    expect(await setStatus(receiver, "idle", "manual")).toEqual({ type: "status", status: "idle", statusSource: "manual" });
    expect(await statusSeenBy(sender, sessionId)).toEqual({ status: "idle", statusSource: "manual" });
  });
});

/** Hooks (idle, working, Stop) and jsonl statuses all leave a manual dnd as it is. */
async function cannotLeaveDnd(
  env: TestBroker,
  { sender, receiver, token, sessionId, cwd }: { sender: TestPeer; receiver: TestPeer; token: string; sessionId: string; cwd: string },
): Promise<void> {
  const dnd = { status: "dnd", statusSource: "manual" };
  for (const status of ["idle", "working"]) {
    const hook = await postHook(env.url, { token, body: { cwd, status, session_id: sessionId } });
    expect(hook).toEqual({ status: 200, body: { ok: true, presence_id: receiver.helloAck?.presenceId } });
    expect(await statusSeenBy(sender, sessionId)).toEqual(dnd);
  }
  const stop = { session_id: sessionId, cwd, hook_event_name: "Stop", transcript_path: "/tmp/t.jsonl", stop_hook_active: false };
  expect((await postHook(env.url, { token, body: stop })).status).toBe(200);
  expect(await statusSeenBy(sender, sessionId)).toEqual(dnd);
  expect(await setStatus(receiver, "idle", "jsonl")).toEqual({ type: "status", ...dnd });
  expect(await setStatus(receiver, "working", "jsonl")).toEqual({ type: "status", ...dnd });
}

describe(`status TTL (STATUS_TTL_SECONDS=${STATUS_TTL_SECONDS}, SWEEP_INTERVAL_MS=${SWEEP_INTERVAL_MS})`, () => {
  const env = useTestBroker({ STATUS_TTL_SECONDS: String(STATUS_TTL_SECONDS), SWEEP_INTERVAL_MS: String(SWEEP_INTERVAL_MS) });

  /** Runs of the sweep counted so far, with flipped="true" and with flipped="false". */
  async function sweepCounts(): Promise<{ flipped: number; unflipped: number }> {
    const scraped = await scrape(env.url);
    const count = (flipped: boolean) => scraped.get(`broker_ttl_sweeps_total{flipped=${flipped}}`);
    const [yes, no] = [count(true), count(false)];
    if (yes === undefined || no === undefined) throw new Error("broker_ttl_sweeps_total has no flipped=\"true\" and flipped=\"false\" series");
    return { flipped: yes, unflipped: no };
  }

  /** Resolves once the status sweep has made `passes` whole passes after the call (a pass counts itself once its flip is done). */
  async function sweepPasses(passes: number): Promise<void> {
    const sweeps = async () => {
      const { flipped, unflipped } = await sweepCounts();
      return flipped + unflipped;
    };
    const target = (await sweeps()) + passes + 1;
    const until = Date.now() + DELIVERY_TIMEOUT_MS;
    while ((await sweeps()) < target) {
      if (Date.now() > until) throw new Error(`fewer than ${passes} status sweep(s) within ${DELIVERY_TIMEOUT_MS} ms`);
      await Bun.sleep(SWEEP_INTERVAL_MS);
    }
  }

  test("a presence stuck in working flips to idle with source jsonl and its held messages go out; dnd does not flip", async () => {
    const { mesh, members } = await setupMesh(env.admin, { members: ["sender", "worker", "busy"] });
    const [senderMember, workerMember, busyMember] = members as [SetupMember, SetupMember, SetupMember];
    const sender = await connect(env, senderMember, mesh.id);
    const busy = await connect(env, busyMember, mesh.id);
    const worker = await connect(env, workerMember, mesh.id);

    expect(await setStatus(busy, "dnd")).toEqual({ type: "status", status: "dnd", statusSource: "manual" });
    expect(await setStatus(worker, "working")).toEqual({ type: "status", status: "working", statusSource: "manual" });
    const workerMsg = await sendTo(sender, workerMember, "next");
    const busyMsg = await sendTo(sender, busyMember, "low");
    // A later now passes the working status: by its push the held next was passed over.
    const workerNow = await sendTo(sender, workerMember, "now");
    await worker.waitForPushes(1, DELIVERY_TIMEOUT_MS);
    expect(pushIds(worker)).toEqual([workerNow]);

    await worker.waitForPushes(2, DELIVERY_TIMEOUT_MS);
    expect(pushIds(worker)).toEqual([workerNow, workerMsg]);
    expect(await statusSeenBy(sender, worker.sessionId)).toEqual({ status: "idle", statusSource: "jsonl" });

    // The sweep that flipped the worker saw the older dnd too; give it one more whole pass.
    await sweepPasses(1);
    expect(await statusSeenBy(sender, busy.sessionId)).toEqual({ status: "dnd", statusSource: "manual" });
    const busyNow = await sendTo(sender, busyMember, "now");
    await busy.waitForPushes(1, DELIVERY_TIMEOUT_MS);
    expect(pushIds(busy)).toEqual([busyNow]);
    expect(await setStatus(busy, "idle")).toEqual({ type: "status", status: "idle", statusSource: "manual" });
    await busy.waitForPushes(2, DELIVERY_TIMEOUT_MS);
    expect(pushIds(busy)).toEqual([busyNow, busyMsg]);
  });

  test("a hook-set working flips too", async () => {
    const { mesh, members } = await setupMesh(env.admin, { members: ["sender", "worker"] });
    const [senderMember, workerMember] = members as [SetupMember, SetupMember];
    const sender = await connect(env, senderMember, mesh.id);
    const cwd = `/home/dev/${mesh.slug}`;
    const worker = await connect(env, workerMember, mesh.id, { cwd });
    const token = await env.admin.createHookToken(mesh.id, workerMember.id);
    const hook = await postHook(env.url, {
      token,
      body: { session_id: worker.sessionId, cwd, hook_event_name: "UserPromptSubmit", prompt: "fix the build", transcript_path: "/tmp/t.jsonl" },
    });
    expect(hook.status).toBe(200);
    expect(await statusSeenBy(sender, worker.sessionId)).toEqual({ status: "working", statusSource: "hook" });

    const msg = await sendTo(sender, workerMember, "next");
    await worker.waitForPushes(1, DELIVERY_TIMEOUT_MS);
    expect(pushIds(worker)).toEqual([msg]);
    expect(await statusSeenBy(sender, worker.sessionId)).toEqual({ status: "idle", statusSource: "jsonl" });
  });

  test('broker_ttl_sweeps_total counts a run that flipped a stuck working with flipped="true", and runs that flipped none with flipped="false"', async () => {
    const before = await sweepCounts();
    const { mesh, members } = await setupMesh(env.admin, { members: ["viewer", "worker"] });
    const [viewerMember, workerMember] = members as [SetupMember, SetupMember];
    const viewer = await connect(env, viewerMember, mesh.id);
    const worker = await connect(env, workerMember, mesh.id);
    expect(await setStatus(worker, "working")).toEqual({ type: "status", status: "working", statusSource: "manual" });
    const until = Date.now() + STATUS_TTL_SECONDS * 1000 + DELIVERY_TIMEOUT_MS;
    while ((await statusSeenBy(viewer, worker.sessionId))?.status !== "idle") {
      if (Date.now() > until) throw new Error("the stuck working status was not flipped");
      await Bun.sleep(SWEEP_INTERVAL_MS);
    }
    expect(await statusSeenBy(viewer, worker.sessionId)).toEqual({ status: "idle", statusSource: "jsonl" });
    // The flip is counted as its statement returns, which the status read may overtake.
    let after = await sweepCounts();
    while (after.flipped === before.flipped && Date.now() < until) {
      await Bun.sleep(SWEEP_INTERVAL_MS);
      after = await sweepCounts();
    }
    expect(after.flipped).toBeGreaterThan(before.flipped);
    // The runs while the status was younger than the TTL flipped nothing.
    expect(after.unflipped).toBeGreaterThan(before.unflipped);
  });
});
