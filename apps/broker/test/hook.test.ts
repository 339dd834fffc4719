// POST /hook/set-status (PROTOCOL.md §3) against real broker processes: token
// auth, Claude Code's own hook input, how a signal finds its presence, signals
// kept for presences that connect later, limits, and the database going away.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import {
  backendKind,
  holdOnInsert,
  ownPostgresTestsRun,
  parsePrometheusText,
  setupMesh,
  someoneHeld,
  startBrokerOnOwnPostgres,
  TestPeer,
  useTestBroker,
  waitUntil,
  type BrokerOnOwnPostgres,
  type ConnectOptions,
  type SetupMember,
  type TestBroker,
} from "@switchboard/testkit";
import postgres from "postgres";
import { expectHookError, postHook, statusSeenBy } from "./support/status.ts";

const MAX_MESSAGE_BYTES = 2048;
const PENDING_HOOK_SECONDS = 1;

const openPeers: TestPeer[] = [];
afterEach(async () => {
  await Promise.all(openPeers.splice(0).map((p) => p.close()));
});

async function connect(env: TestBroker, member: SetupMember, meshId: string, options: Partial<ConnectOptions> = {}): Promise<TestPeer> {
  const peer = await TestPeer.connect(env.wsUrl, { identity: member.identity, meshId, ...options });
  openPeers.push(peer);
  return peer;
}

async function metric(env: TestBroker, name: string): Promise<number> {
  const families = parsePrometheusText(await (await fetch(`${env.url}/metrics`)).text());
  const samples = families.get(name)?.samples ?? [];
  expect(samples.length).toBeGreaterThan(0);
  return samples.reduce((sum, s) => sum + s.value, 0);
}

/** A mesh with one member and its hook token. */
async function memberWithToken(env: TestBroker, names: string[] = ["agent"]) {
  const { mesh, members } = await setupMesh(env.admin, { members: names });
  const member = members[0]!;
  const token = await env.admin.createHookToken(mesh.id, member.id);
  return { mesh, members, member, token, cwd: `/home/dev/${mesh.slug}` };
}

/** Claude Code's hook input for an event, as its hooks receive it on stdin. */
function claudeHookInput(event: string, sessionId: string, cwd: string): Record<string, unknown> {
  const common = {
    session_id: sessionId,
    transcript_path: `/home/dev/.claude/projects/-home-dev-project/${sessionId}.jsonl`,
    cwd,
    permission_mode: "default",
    hook_event_name: event,
  };
  const toolInput = { command: "bun test", description: "Run the tests" };
  switch (event) {
    case "UserPromptSubmit":
      return { ...common, prompt: "Write the hook tests" };
    case "PreToolUse":
      return { ...common, tool_name: "Bash", tool_input: toolInput, tool_use_id: "toolu_01ABC" };
    case "PostToolUse":
      return {
        ...common,
        tool_name: "Bash",
        tool_input: toolInput,
        tool_response: { stdout: "12 pass", stderr: "", interrupted: false },
        tool_use_id: "toolu_01ABC",
      };
    case "Stop":
    case "SubagentStop":
      return { ...common, stop_hook_active: false };
    case "SessionEnd":
      return { ...common, reason: "prompt_input_exit" };
    case "Notification":
      return { ...common, message: "Claude needs your permission to use Bash", notification_type: "permission_prompt" };
    default:
      return common;
  }
}

describe(`POST /hook/set-status (MAX_MESSAGE_BYTES=${MAX_MESSAGE_BYTES})`, () => {
  const env = useTestBroker({ MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) });

  test("an explicit status with a valid token → 200 {ok, presence_id}; the presence's status changes; logged", async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const peer = await connect(env, member, mesh.id, { cwd, pid: 4242 });
    const presenceId = peer.helloAck?.presenceId;
    expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "idle", statusSource: "manual" });

    const answer = await postHook(env.url, { token, body: { cwd, status: "working", pid: 4242, session_id: peer.sessionId } });
    expect(answer).toEqual({ status: 200, body: { ok: true, presence_id: presenceId } });
    expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "working", statusSource: "hook" });
    const line = await env.process.waitForLog("hook", 5000, (l) => l.presence_id === presenceId);
    expect(line).toMatchObject({ cwd, pid: 4242, status: "working", presence_id: presenceId });

    const idle = await postHook(env.url, { token, body: { cwd, status: "idle", pid: 4242, session_id: peer.sessionId } });
    expect(idle).toEqual({ status: 200, body: { ok: true, presence_id: presenceId } });
    expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "idle", statusSource: "hook" });
  });

  test("Claude Code's own hook input without status: prompt and tool events → working, stop/end/notification → idle", async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const peer = await connect(env, member, mesh.id, { cwd });
    const steps: [string, string][] = [
      ["UserPromptSubmit", "working"],
      ["Stop", "idle"],
      ["PreToolUse", "working"],
      ["SubagentStop", "idle"],
      ["PostToolUse", "working"],
      ["SessionEnd", "idle"],
      ["PreToolUse", "working"],
      ["Notification", "idle"],
    ];
    for (const [event, expected] of steps) {
      const answer = await postHook(env.url, { token, body: claudeHookInput(event, peer.sessionId, cwd) });
      expect({ event, answer }).toEqual({ event, answer: { status: 200, body: { ok: true, presence_id: peer.helloAck?.presenceId } } });
      expect({ event, seen: await statusSeenBy(peer, peer.sessionId) }).toEqual({ event, seen: { status: expected, statusSource: "hook" } });
    }
  });

  test("resolution order: session_id, else pid+cwd (pid in body or x-switchboard-pid), else the newest with that cwd, else that pid", async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const other = `${cwd}-other`;
    const p1 = await connect(env, member, mesh.id, { sessionId: "s-1", pid: 111, cwd });
    await Bun.sleep(20);
    const p2 = await connect(env, member, mesh.id, { sessionId: "s-2", pid: 222, cwd });
    await Bun.sleep(20);
    const p3 = await connect(env, member, mesh.id, { sessionId: "s-3", pid: 333, cwd });
    await Bun.sleep(20);
    // Newest of all, but in another directory.
    const p4 = await connect(env, member, mesh.id, { sessionId: "s-4", pid: 444, cwd: other });
    const id = (p: TestPeer) => p.helloAck?.presenceId;

    const cases: { name: string; body: Record<string, unknown>; pidHeader?: number; expected: unknown }[] = [
      { name: "session beats pid+cwd", body: { cwd, session_id: "s-1", pid: 222 }, expected: id(p1) },
      { name: "session beats cwd", body: { cwd: other, session_id: "s-1" }, expected: id(p1) },
      { name: "pid+cwd beats newest", body: { cwd, pid: 222 }, expected: id(p2) },
      { name: "pid from the header", body: { cwd }, pidHeader: 111, expected: id(p1) },
      { name: "unknown session → pid+cwd", body: { cwd, session_id: "no-such-session", pid: 222 }, expected: id(p2) },
      { name: "unknown session and pid → newest with cwd", body: { cwd, session_id: "no-such-session", pid: 999 }, expected: id(p3) },
      { name: "cwd only → newest with cwd", body: { cwd }, expected: id(p3) },
      { name: "pid of another cwd → newest with this cwd", body: { cwd: other, pid: 111 }, expected: id(p4) },
      // Claude Code's pid, from a directory the model moved to: that session.
      { name: "no presence with this cwd → that pid", body: { cwd: `${cwd}/packages/app`, pid: 222 }, expected: id(p2) },
    ];
    for (const c of cases) {
      const answer = await postHook(env.url, { token, body: { ...c.body, status: "working" }, pidHeader: c.pidHeader });
      expect({ name: c.name, answer }).toEqual({ name: c.name, answer: { status: 200, body: { ok: true, presence_id: c.expected } } });
    }
    const lost = await postHook(env.url, { token, body: { cwd: "/nowhere", pid: 999, status: "working" } });
    expect(lost).toEqual({ status: 200, body: { ok: true, pending: true } });
  });

  test("no presence yet → pending; a presence connecting within 10 s with that session gets the status", async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const sessionId = `sess-${crypto.randomUUID()}`;
    const answer = await postHook(env.url, { token, body: claudeHookInput("UserPromptSubmit", sessionId, cwd) });
    expect(answer).toEqual({ status: 200, body: { ok: true, pending: true } });
    const line = await env.process.waitForLog("hook", 5000, (l) => l.cwd === cwd);
    expect(line).toMatchObject({ cwd, status: "working", pending: true });

    const peer = await connect(env, member, mesh.id, { sessionId, cwd });
    expect(peer.helloAck?.status).toBe("working");
    expect(await statusSeenBy(peer, sessionId)).toEqual({ status: "working", statusSource: "hook" });
  });

  test("a pending signal without session_id is applied to a presence connecting with that pid and cwd", async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const answer = await postHook(env.url, { token, body: { cwd, status: "working" }, pidHeader: 5151 });
    expect(answer).toEqual({ status: 200, body: { ok: true, pending: true } });
    const peer = await connect(env, member, mesh.id, { pid: 5151, cwd });
    expect(peer.helloAck?.status).toBe("working");
    expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "working", statusSource: "hook" });
  });

  test("a pending signal from a subdirectory is applied to a presence connecting with that pid", async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const answer = await postHook(env.url, { token, body: claudeHookInput("UserPromptSubmit", `claude-${crypto.randomUUID()}`, `${cwd}/src`), pidHeader: 5353 });
    expect(answer).toEqual({ status: 200, body: { ok: true, pending: true } });
    const stranger = await connect(env, member, mesh.id, { pid: 5454, cwd });
    expect(stranger.helloAck?.status).toBe("idle");
    const peer = await connect(env, member, mesh.id, { pid: 5353, cwd });
    expect(peer.helloAck?.status).toBe("working");
  });

  test("a kept signal that names a pid is not given, when looked at again, to another session in its cwd", async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const answer = await postHook(env.url, { token, body: claudeHookInput("UserPromptSubmit", `claude-${crypto.randomUUID()}`, cwd), pidHeader: 5656 });
    expect(answer).toEqual({ status: 200, body: { ok: true, pending: true } });
    const stranger = await connect(env, member, mesh.id, { pid: 5757, cwd });
    expect(stranger.helloAck?.status).toBe("idle");
    // The broker looks at the kept signal again 1 s after it was kept.
    await Bun.sleep(2500);
    expect(await statusSeenBy(stranger, stranger.sessionId)).toEqual({ status: "idle", statusSource: "manual" });
    const peer = await connect(env, member, mesh.id, { pid: 5656, cwd });
    expect(peer.helloAck?.status).toBe("working");
  });

  test("a pending hook with Claude's session id reaches a peer that knows only its parent's pid and cwd", async () => {
    // The installed hook pipes stdin (with Claude Code's session_id) and adds $PPID;
    // a peer that does not know that session id says the same pid and cwd.
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const claudeSession = `claude-${crypto.randomUUID()}`;
    const answer = await postHook(env.url, { token, body: claudeHookInput("UserPromptSubmit", claudeSession, cwd), pidHeader: 5252 });
    expect(answer).toEqual({ status: 200, body: { ok: true, pending: true } });
    const peer = await connect(env, member, mesh.id, { pid: 5252, cwd });
    expect(peer.helloAck?.status).toBe("working");
    expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "working", statusSource: "hook" });
  });

  test("a hook token of member A cannot change member B's presence", async () => {
    const { mesh, members, token: tokenA } = await memberWithToken(env, ["alice", "bob"]);
    const bob = members[1]!;
    const cwd = `/home/bob/${mesh.slug}`;
    const bobPeer = await connect(env, bob, mesh.id, { sessionId: "bob-session", cwd, pid: 7000 });

    const answer = await postHook(env.url, { token: tokenA, body: { cwd, status: "working", session_id: "bob-session", pid: 7000 } });
    expect(answer).toEqual({ status: 200, body: { ok: true, pending: true } });
    expect(await statusSeenBy(bobPeer, "bob-session")).toEqual({ status: "idle", statusSource: "manual" });

    // Nor is Alice's signal kept for Bob: his next presence of that session starts idle.
    const again = await connect(env, bob, mesh.id, { sessionId: "bob-session", cwd, pid: 7000 });
    expect(again.helloAck?.status).toBe("idle");
    expect(await statusSeenBy(again, "bob-session")).toEqual({ status: "idle", statusSource: "manual" });
  });

  test("400 for bodies that are not JSON, lack cwd, or name no status and no known hook event; nothing changes", async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const peer = await connect(env, member, mesh.id, { cwd });
    const session_id = peer.sessionId;
    const bodies: unknown[] = [
      "{not json",
      "",
      "[]",
      "null",
      { status: "working", session_id },
      { cwd: "", status: "working", session_id },
      { ...claudeHookInput("PreCompact", session_id, cwd) },
      { cwd, session_id, hook_event_name: "NoSuchEvent" },
      { cwd, session_id },
      { cwd, session_id, status: "sleeping" },
      { cwd, session_id, status: "working", pid: "not a number" },
      { cwd: `${cwd}\u0000`, status: "working" },
      { cwd, session_id: "\ud800", status: "working" },
    ];
    for (const body of bodies) {
      const answer = await postHook(env.url, { token, body });
      expect({ body, status: answer.status }).toEqual({ body, status: 400 });
      expectHookError(answer, 400);
    }
    expect(await statusSeenBy(peer, session_id)).toEqual({ status: "idle", statusSource: "manual" });
  });

  test("401 for a missing, wrong or malformed token and for the token of a revoked member", async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const peer = await connect(env, member, mesh.id, { cwd });
    const body = { cwd, status: "working", session_id: peer.sessionId };

    expectHookError(await postHook(env.url, { body }), 401);
    expectHookError(await postHook(env.url, { token: "wrong-token-0123456789abcdef", body }), 401);
    expectHookError(await postHook(env.url, { token: `${token}x`, body }), 401);
    expectHookError(await postHook(env.url, { body, headers: { authorization: `Basic ${token}` } }), 401);
    expectHookError(await postHook(env.url, { token: env.adminToken, body }), 401);
    expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "idle", statusSource: "manual" });

    // The same token works until its member is revoked.
    const ok = await postHook(env.url, { token, body: { cwd, status: "idle" } });
    expect(ok.status).toBe(200);
    await env.admin.revokeMember(mesh.id, member.id);
    expectHookError(await postHook(env.url, { token, body: { cwd, status: "idle" } }), 401);
    // Told so whatever it sends: a body the broker would refuse, or one too large.
    expectHookError(await postHook(env.url, { token, body: { cwd, hook_event_name: "PreCompact" } }), 401);
    expectHookError(await postHook(env.url, { token, body: "not json" }), 401);
    expectHookError(await postHook(env.url, { token, body: JSON.stringify({ cwd, pad: "x".repeat(MAX_MESSAGE_BYTES) }) }), 401);
    expectHookError(await postHook(env.url, { token: "wrong-token-0123456789abcdef", body: "not json" }), 401);
  });

  test(`413 for a body over MAX_MESSAGE_BYTES, declared or streamed; nothing changes`, async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const peer = await connect(env, member, mesh.id, { cwd });
    const big = JSON.stringify({ ...claudeHookInput("PreToolUse", peer.sessionId, cwd), status: "working", pad: "x".repeat(MAX_MESSAGE_BYTES) });
    expect(Buffer.byteLength(big)).toBeGreaterThan(MAX_MESSAGE_BYTES);
    const refused = await postHook(env.url, { token, body: big });
    expectHookError(refused, 413);
    // Claude Code's own input with a long prompt or answer: told what to send instead.
    expect(refused.body.message).toBe(
      `the body is larger than ${MAX_MESSAGE_BYTES} bytes (MAX_MESSAGE_BYTES); send only cwd, session_id and hook_event_name, not the prompt or answer`,
    );

    // Without a Content-Length (chunked), the broker must count the bytes itself.
    const bytes = new TextEncoder().encode(big);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 512) controller.enqueue(bytes.subarray(i, i + 512));
        controller.close();
      },
    });
    const res = await fetch(`${env.url}/hook/set-status`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: stream,
    });
    expectHookError({ status: res.status, body: (await res.json()) as Record<string, unknown> }, 413);

    // Just under the limit is fine.
    const fitting = JSON.stringify({ cwd, status: "working", session_id: peer.sessionId, pad: "x".repeat(1500) });
    expect(Buffer.byteLength(fitting)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "idle", statusSource: "manual" });
    expect((await postHook(env.url, { token, body: fitting })).status).toBe(200);
    expect(await statusSeenBy(peer, peer.sessionId)).toEqual({ status: "working", statusSource: "hook" });
  });

  test("a body of several megabytes also gets 413 with the contract's error body", async () => {
    const { token, cwd } = await memberWithToken(env);
    const huge = JSON.stringify({ cwd, status: "working", pad: "x".repeat(3 * 1024 * 1024) });
    expectHookError(await postHook(env.url, { token, body: huge }), 413);
  });
});

/**
 * A presence of a new session whose hello did not see the UserPromptSubmit
 * hook kept meanwhile: the hello's insert is held, after it took the kept
 * signals and before it commits, until the hook has been answered.
 */
async function connectMissingASignal(env: TestBroker, sessionId: string) {
  const { mesh, member, token, cwd } = await memberWithToken(env);
  const databaseUrl = env.backend.databaseUrl!;
  const hold = await holdOnInsert(databaseUrl, { presenceSession: sessionId });
  let connecting: Promise<TestPeer> | undefined;
  try {
    connecting = connect(env, member, mesh.id, { sessionId, cwd });
    await waitUntil(() => someoneHeld(databaseUrl), 10_000, "the hello's insert held");
    const working = await postHook(env.url, { token, body: claudeHookInput("UserPromptSubmit", sessionId, cwd) });
    expect(working).toEqual({ status: 200, body: { ok: true, pending: true } });
  } finally {
    await hold.release();
  }
  const peer = await connecting;
  expect(peer.helloAck?.status).toBe("idle");
  return { mesh, member, token, cwd, peer };
}

describe.skipIf(backendKind !== "postgres")("a hook racing its session's hello (needs DATABASE_URL)", () => {
  const env = useTestBroker();

  test("a signal kept while the hello's statement ran reaches its presence once the hello is in", async () => {
    const sessionId = `slow-${crypto.randomUUID()}`;
    const { peer } = await connectMissingASignal(env, sessionId);
    await waitUntil(async () => (await statusSeenBy(peer, sessionId))?.status === "working", 10_000, "the kept signal applied");
  });
});

describe.skipIf(backendKind !== "postgres")("hooks racing a hello held behind its mesh's lock (needs DATABASE_URL)", () => {
  const env = useTestBroker();
  let sql: postgres.Sql;
  beforeAll(() => {
    sql = postgres(env.backend.databaseUrl!, { max: 2, onnotice: () => {} });
  });
  afterAll(() => sql?.end());

  const waitingForLocks = async () =>
    (await sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`)[0]!.n > 0;
  const kept = async (sessionId: string) => (await sql`SELECT count(*)::int AS n FROM pending_hook_statuses WHERE session_id = ${sessionId}`)[0]!.n;

  /**
   * Connects while the mesh's row is held from outside: the hello reads the
   * session's last status, then waits for the mesh; `meanwhile` runs then,
   * and the hello goes on once it is done.
   */
  async function connectBehindMeshLock(meshId: string, connecting: () => Promise<TestPeer>, meanwhile: () => Promise<void>): Promise<TestPeer> {
    const held = await sql.begin(async (tx) => {
      await tx`SELECT id FROM meshes WHERE id = ${meshId} FOR UPDATE`;
      const peer = connecting();
      await waitUntil(waitingForLocks, 10_000, "the hello waiting for the mesh");
      await meanwhile();
      // Not awaited here: the hello goes on once this transaction ends.
      return { peer };
    });
    return held.peer;
  }

  test("a Stop applied to the old presence while the hello waits for its mesh is what the new presence starts with", async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const sessionId = `replaced-${crypto.randomUUID()}`;
    const old = await connect(env, member, mesh.id, { sessionId, cwd });
    expect((await postHook(env.url, { token, body: claudeHookInput("UserPromptSubmit", sessionId, cwd) })).status).toBe(200);
    expect((await statusSeenBy(old, sessionId))?.status).toBe("working");
    const replacing = await connectBehindMeshLock(
      mesh.id,
      () => connect(env, member, mesh.id, { sessionId, cwd }),
      async () => {
        const stop = await postHook(env.url, { token, body: claudeHookInput("Stop", sessionId, cwd) });
        expect(stop).toEqual({ status: 200, body: { ok: true, presence_id: old.helloAck?.presenceId } });
      },
    );
    expect(replacing.helloAck?.status).toBe("idle");
    expect((await statusSeenBy(replacing, sessionId))?.status).toBe("idle");
  });

  test("a signal kept while the hello waits for its mesh is the new presence's status", async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const sessionId = `behind-${crypto.randomUUID()}`;
    const peer = await connectBehindMeshLock(
      mesh.id,
      () => connect(env, member, mesh.id, { sessionId, cwd }),
      async () => {
        const working = await postHook(env.url, { token, body: claudeHookInput("UserPromptSubmit", sessionId, cwd) });
        expect(working).toEqual({ status: 200, body: { ok: true, pending: true } });
      },
    );
    expect(peer.helloAck?.status).toBe("working");
    expect(await kept(sessionId)).toBe(0);
  });

  test("a kept signal looked at again as its presence ends stays kept, for the session's next presence", async () => {
    const sessionId = `ending-${crypto.randomUUID()}`;
    const { mesh, member, cwd, peer } = await connectMissingASignal(env, sessionId);
    const presenceId = String(peer.helloAck?.presenceId);
    // The presence's row held while the signal is looked at again (after 1 s); it ends meanwhile.
    await sql.begin(async (tx) => {
      await tx`SELECT id FROM presences WHERE id = ${presenceId} FOR UPDATE`;
      await waitUntil(waitingForLocks, 10_000, "the second look waiting for the presence");
      await tx`UPDATE presences SET disconnected_at = now() WHERE id = ${presenceId}`;
    });
    expect(await kept(sessionId)).toBe(1);
    const next = await connect(env, member, mesh.id, { sessionId, cwd });
    expect(next.helloAck?.status).toBe("working");
  });

  test("a signal kept while the hello waited, looked at again after a later hook, is spent rather than applied over it", async () => {
    const sessionId = `late-${crypto.randomUUID()}`;
    const { token, cwd, peer } = await connectMissingASignal(env, sessionId);
    // The turn ends before the kept signal is looked at again (after 1 s).
    expect((await postHook(env.url, { token, body: claudeHookInput("Stop", sessionId, cwd) })).status).toBe(200);
    await waitUntil(async () => (await kept(sessionId)) === 0, 10_000, "the kept signal looked at again");
    expect((await statusSeenBy(peer, sessionId))?.status).toBe("idle");
  });
});

describe("a hello refused for capacity (MAX_CONNECTIONS_PER_MESH=1)", () => {
  const env = useTestBroker({ MAX_CONNECTIONS_PER_MESH: "1" });

  test("leaves the hook signal it matched waiting for the next try", async () => {
    const { mesh, members, member, token, cwd } = await memberWithToken(env, ["agent", "other"]);
    const occupant = await connect(env, members[1]!, mesh.id);
    const sessionId = `sess-${crypto.randomUUID()}`;
    const answer = await postHook(env.url, { token, body: claudeHookInput("UserPromptSubmit", sessionId, cwd) });
    expect(answer).toEqual({ status: 200, body: { ok: true, pending: true } });
    const refused = await TestPeer.connect(env.wsUrl, { identity: member.identity, meshId: mesh.id, sessionId, cwd }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refused).toMatchObject({ code: "capacity" });
    await occupant.close();
    await waitUntil(async () => (await env.admin.peers(mesh.id)).length === 0, 10_000, "the occupant's presence to end");
    const peer = await connect(env, member, mesh.id, { sessionId, cwd });
    expect(peer.helloAck?.status).toBe("working");
  });
});

describe(`hook rate limit, metrics and pending expiry (HOOK_RATE_LIMIT_PER_MIN=3, PENDING_HOOK_SECONDS=${PENDING_HOOK_SECONDS})`, () => {
  const env = useTestBroker({ HOOK_RATE_LIMIT_PER_MIN: "3", PENDING_HOOK_SECONDS: String(PENDING_HOOK_SECONDS) });

  test("429 after 3 requests for one (token, pid, cwd); another cwd, pid or token is still accepted; counted in metrics", async () => {
    const { mesh, members, token, cwd } = await memberWithToken(env, ["agent", "other"]);
    const otherToken = await env.admin.createHookToken(mesh.id, members[1]!.id);
    const peer = await connect(env, members[0]!, mesh.id, { cwd, pid: 900 });
    const totalBefore = await metric(env, "broker_hook_requests_total");
    const limitedBefore = await metric(env, "broker_hook_requests_rate_limited_total");

    const body = { cwd, pid: 900, status: "working" };
    for (let i = 0; i < 3; i++) {
      const answer = await postHook(env.url, { token, body });
      expect({ i, answer }).toEqual({ i, answer: { status: 200, body: { ok: true, presence_id: peer.helloAck?.presenceId } } });
    }
    expectHookError(await postHook(env.url, { token, body }), 429);
    // The same pid given in the header is the same key.
    expectHookError(await postHook(env.url, { token, body: { cwd, status: "working" }, pidHeader: 900 }), 429);

    expect((await postHook(env.url, { token, body: { ...body, cwd: `${cwd}/sub` } })).status).toBe(200);
    expect((await postHook(env.url, { token, body: { ...body, pid: 901 } })).status).toBe(200);
    expect((await postHook(env.url, { token: otherToken, body })).status).toBe(200);

    expect((await metric(env, "broker_hook_requests_total")) - totalBefore).toBe(8);
    expect((await metric(env, "broker_hook_requests_rate_limited_total")) - limitedBefore).toBe(2);
  });

  test("a session refused for its own rate does not use up its token's: other sessions of the token are still accepted", async () => {
    const { token, cwd } = await memberWithToken(env);
    // Far past its own limit of 3; the token's 300 would be spent by counting every refusal.
    for (let i = 0; i < 300; i++) await postHook(env.url, { token, body: { cwd, pid: 700, status: "working" } });
    expect((await postHook(env.url, { token, body: { cwd, pid: 701, status: "working" } })).status).toBe(200);
  });

  test("a pending signal is not applied after PENDING_HOOK_SECONDS", async () => {
    const { mesh, member, token, cwd } = await memberWithToken(env);
    const sessionId = `sess-${crypto.randomUUID()}`;
    const answer = await postHook(env.url, { token, body: { cwd, status: "working", session_id: sessionId, pid: 6161 } });
    expect(answer).toEqual({ status: 200, body: { ok: true, pending: true } });
    await Bun.sleep(PENDING_HOOK_SECONDS * 1000 + 500);
    const peer = await connect(env, member, mesh.id, { sessionId, cwd, pid: 6161 });
    expect(peer.helloAck?.status).toBe("idle");
    expect(await statusSeenBy(peer, sessionId)).toEqual({ status: "idle", statusSource: "manual" });
  });

  test("a wrong token is a 401 however often it is tried, never a 429", async () => {
    const { cwd } = await memberWithToken(env);
    const body = { cwd, pid: 902, status: "working" };
    for (let i = 0; i < 5; i++) expectHookError(await postHook(env.url, { token: "sbh_not-a-token", body }), 401);
  });
});

describe.skipIf(!ownPostgresTestsRun())("hook while Postgres is down", () => {
  let own: BrokerOnOwnPostgres | undefined;
  afterAll(() => own?.dispose());

  test("503 {ok:false} while the database is unreachable; 200 again once it is back", async () => {
    own = await startBrokerOnOwnPostgres();
    const { cluster, broker } = own;
    const { token, cwd } = await memberWithToken(broker);
    const body = { cwd, status: "working", session_id: "outage-session" };
    expect(await postHook(broker.url, { token, body })).toEqual({ status: 200, body: { ok: true, pending: true } });

    await cluster.stop();
    expectHookError(await postHook(broker.url, { token, body }), 503);

    await cluster.start();
    let last = 0;
    for (const until = Date.now() + 30_000; Date.now() < until; ) {
      last = (await postHook(broker.url, { token, body })).status;
      if (last === 200) break;
      await Bun.sleep(250);
    }
    expect(last).toBe(200);
  });
});
