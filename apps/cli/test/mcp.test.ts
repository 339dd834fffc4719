// Claude Code sessions that talk, end to end with real processes: a real
// broker; `switchboard install` run in two (and more) project directories;
// the MCP server each install registered, started over stdio by an MCP client
// from the SDK standing in for Claude Code; the installed hook commands fed
// real Claude Code hook input through `sh -c`, as Claude Code runs them.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { MAX_ACK_DELAY_MS } from "@switchboard/client";
import { freePort, newIdentity, setupMesh, TestBroker, TestPeer, type SetupMember } from "@switchboard/testkit";
import { mkdirSync, writeFileSync } from "node:fs";
import { CliHome, cliOk } from "./support/cli.ts";
import { installedHook, McpSession, projectFiles, registeredServer, runHook, type ChannelNote } from "./support/mcp.ts";

const TOOLS = ["send_message", "check_messages", "list_peers", "set_status", "join_channel", "leave_channel"];

// A fixed port: one test restarts the broker where the MCP servers look for it.
let broker: TestBroker;
let home: CliHome;
let meshSlug: string;
const members: Record<string, SetupMember> = {};
const sessions: McpSession[] = [];
const peers: TestPeer[] = [];

/** One Claude Code project of one member: installed, with its session id. */
interface Project {
  name: string;
  dir: string;
  sessionId: string;
  files: ReturnType<typeof projectFiles>;
}
const projects: Record<string, Project> = {};

async function installProject(name: string): Promise<Project> {
  const member = members[name]!;
  const dir = home.path("projects", name);
  mkdirSync(dir, { recursive: true });
  const keyFile = home.path(`${name}.json`);
  writeFileSync(keyFile, JSON.stringify({ secretKey: member.identity.secretKey, publicKey: member.pubkey }), { mode: 0o600 });
  const token = await broker.admin.createHookToken(meshSlug, member.id);
  await cliOk(home, ["install", "--url", broker.url, "--mesh", meshSlug, "--key", keyFile, "--token", token], { cwd: dir });
  const project = { name, dir, sessionId: `claude-${name}-${crypto.randomUUID()}`, files: projectFiles(dir) };
  projects[name] = project;
  return project;
}

/** Starts the registered server as Claude Code would for a session of that project. */
async function startSession(
  project: Project,
  options: { sessionEnv?: boolean; sessionId?: string; extraArgs?: string[] } = {},
): Promise<McpSession> {
  const server = registeredServer(project.files.mcp);
  const env = home.env({
    CLAUDE_PROJECT_DIR: project.dir,
    ...(options.sessionEnv === false ? {} : { CLAUDE_CODE_SESSION_ID: options.sessionId ?? project.sessionId }),
  });
  const session = await McpSession.start({ command: server.command, args: [...server.args, ...(options.extraArgs ?? [])] }, { cwd: project.dir, env });
  sessions.push(session);
  await session.connected();
  return session;
}

function hookInput(project: Project, event: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    session_id: project.sessionId,
    transcript_path: `/home/dev/.claude/projects/${project.name}/${project.sessionId}.jsonl`,
    cwd: project.dir,
    permission_mode: "default",
    hook_event_name: event,
    ...extra,
  };
}

/** Runs the installed hook of that event with Claude Code's input for it. */
async function hook(project: Project, event: string, extra: Record<string, unknown> = {}): Promise<void> {
  const command = installedHook(project.files.settings, event);
  const result = await runHook(command, hookInput(project, event, extra));
  expect(result).toEqual({ code: 0, stdout: "", stderr: "" });
}

async function statusOf(sessionId: string): Promise<string | undefined> {
  return (await broker.admin.peers(meshSlug)).find((p) => p.sessionId === sessionId)?.status;
}

async function expectStatus(sessionId: string, status: string): Promise<void> {
  // The hook command has exited, so its POST was answered: the status is final now.
  expect(await statusOf(sessionId)).toBe(status);
}

const hasText = (text: string) => (n: ChannelNote) => n.content === text;

beforeAll(async () => {
  broker = await TestBroker.start({ BROKER_PORT: String(await freePort()) });
  home = new CliHome();
  const setup = await setupMesh(broker.admin, { members: ["alice", "bob", "carol", "dave"] });
  meshSlug = setup.mesh.slug;
  for (const m of setup.members) members[m.displayName] = m;
  for (const name of ["alice", "bob", "carol", "dave"]) await installProject(name);
});
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
});
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close().catch(() => {})));
  await broker?.dispose();
  home?.dispose();
});

describe("two sessions, alice and bob", () => {
  let a: McpSession;
  let b: McpSession;
  beforeAll(async () => {
    [a, b] = await Promise.all([startSession(projects.alice!), startSession(projects.bob!)]);
  });
  afterEach(async () => {
    // Each test starts with empty inboxes.
    await Promise.all([a.ok("check_messages"), b.ok("check_messages")]);
  });

  test("tools/list has the six tools with their input schemas; the server declares the channel capability and instructions", async () => {
    const { tools } = await a.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([...TOOLS].sort());
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
    expect(byName.send_message?.inputSchema).toMatchObject({
      type: "object",
      properties: {
        to: { type: "string" },
        text: { type: "string" },
        priority: { enum: ["now", "next", "low"] },
        reply_to: { type: "string" },
        id: { type: "string" },
      },
      required: ["to", "text"],
    });
    expect(byName.set_status?.inputSchema).toMatchObject({ type: "object", properties: { status: { enum: ["idle", "working", "dnd"] } }, required: ["status"] });
    for (const name of ["join_channel", "leave_channel"]) {
      expect(byName[name]?.inputSchema).toMatchObject({ type: "object", properties: { channel: { type: "string" } }, required: ["channel"] });
    }
    for (const name of ["check_messages", "list_peers"]) expect(byName[name]?.inputSchema).toMatchObject({ type: "object", properties: {} });
    // Its entries carry `encrypted` without the notification's warning: the description says what false means.
    expect(byName.check_messages?.description).toContain("`encrypted: false` marks a message sent unencrypted");
    expect(a.client.getServerCapabilities()).toMatchObject({ tools: {}, experimental: { "claude/channel": {} } });
    expect(a.client.getInstructions()).toContain("send_message");
    expect(a.client.getInstructions()).toContain("reply_to");
  });

  test("send_message by display name reaches the other session as notifications/claude/channel, with string meta; a reply carries reply_to", async () => {
    const sent = await a.ok("send_message", { to: "bob", text: "hello bob, can you review parser.ts?" });
    expect(sent).toEqual({ message_id: expect.any(String), recipients: 1, target: members.bob!.pubkey });
    const note = await b.note(hasText("hello bob, can you review parser.ts?"), "alice's message");
    expect(note.meta).toEqual({
      from: "alice",
      from_pubkey: members.alice!.pubkey,
      message_id: sent.message_id as string,
      priority: "next",
      target: members.bob!.pubkey,
      encrypted: "true",
    });

    const answer = await b.ok("send_message", { to: note.meta.from_pubkey, text: "on it", priority: "now", reply_to: note.meta.message_id });
    const reply = await a.note(hasText("on it"), "bob's reply");
    expect(reply.meta).toMatchObject({ from: "bob", message_id: answer.message_id as string, priority: "now", reply_to: sent.message_id as string });
  });

  test("send_message again with the id of one stored already says duplicate: nothing new was sent", async () => {
    const id = crypto.randomUUID();
    const first = await a.ok("send_message", { to: "bob", text: "once", id });
    expect(first.duplicate).toBeUndefined();
    const again = await a.ok("send_message", { to: "bob", text: "once", id });
    expect(again).toEqual({ message_id: first.message_id, recipients: 1, target: members.bob!.pubkey, duplicate: true });
  });

  test("a message to an unknown name, or a bad argument, is an isError result with its code, not a hung call", async () => {
    const unknown = await a.call("send_message", { to: "nobody-here", text: "hi" });
    expect(unknown.isError).toBe(true);
    expect(unknown.data).toMatchObject({ error: { code: "unknown_target" } });
    expect(unknown.text).toStartWith("unknown_target: ");
    const bad = await a.call("set_status", { status: "sleeping" });
    expect(bad).toMatchObject({ isError: true, data: { error: { code: "invalid" } } });
    const noTool = await a.call("no_such_tool");
    expect(noTool).toMatchObject({ isError: true, data: { error: { code: "unknown_tool" } } });
  });

  test("a name that matches a member's only when case is ignored is unknown_target naming that member's name; nothing is sent", async () => {
    const wrongCase = await a.call("send_message", { to: "BOB", text: "hi" });
    expect(wrongCase.isError).toBe(true);
    expect(wrongCase.data).toEqual({ error: { code: "unknown_target", message: expect.stringContaining('did you mean "bob"?') } });
    expect((await b.ok("check_messages")).messages).toEqual([]);
  });

  test("a pubkey written in capitals is that pubkey (sent to it, in lowercase), not a display name", async () => {
    const sent = await a.ok("send_message", { to: members.bob!.pubkey.toUpperCase(), text: "to the key in capitals" });
    expect(sent).toEqual({ message_id: expect.any(String), recipients: 1, target: members.bob!.pubkey });
    const note = await b.note(hasText("to the key in capitals"), "the message sent to the key in capitals");
    expect(note.meta).toMatchObject({ from: "alice", target: members.bob!.pubkey, message_id: sent.message_id as string });
  });

  test("hooks: next is held while bob works, now is not; Stop, StopFailure and the idle prompt each release what was held", async () => {
    const bob = projects.bob!;
    const releases: Record<string, number> = {};
    const endings: Array<[string, Record<string, unknown>]> = [
      ["Stop", { stop_hook_active: false, last_assistant_message: "Done." }],
      ["StopFailure", { error_type: "rate_limit", error_message: "429 Too Many Requests" }],
      ["Notification", { message: "Claude is waiting for your input", title: "Claude Code", notification_type: "idle_prompt" }],
    ];
    for (const [event, input] of endings) {
      await hook(bob, "UserPromptSubmit", { prompt: "Fix the flaky test in parser.test.ts" });
      await expectStatus(bob.sessionId, "working");
      const held = await a.ok("send_message", { to: "bob", text: `held until ${event}` });
      await a.ok("send_message", { to: "bob", text: `urgent before ${event}`, priority: "now" });
      // The marker: the later `now` message arrived, the earlier `next` one did not.
      await b.note(hasText(`urgent before ${event}`), "the now message while working");
      expect(b.notes.items.some(hasText(`held until ${event}`))).toBe(false);
      if (event === "Notification") {
        // A permission prompt comes mid-turn: the hook does not end the turn.
        await hook(bob, "Notification", { message: "Claude needs your permission to use Bash", notification_type: "permission_prompt" });
        await expectStatus(bob.sessionId, "working");
      }
      const before = performance.now();
      await hook(bob, event, input);
      const released = await b.note(hasText(`held until ${event}`), `the held message after ${event}`);
      releases[event] = Math.round(performance.now() - before);
      expect(released.meta.message_id).toBe(held.message_id as string);
      await expectStatus(bob.sessionId, "idle");
    }
    // A figure, not a pass/fail bound (timing belongs in benchmarks): from the hook's start to the notification.
    console.error(`held message released after the ending hook (ms): ${JSON.stringify(releases)}`);
  });

  test("check_messages returns what arrived (also what was notified) and then an empty list", async () => {
    const first = await a.ok("send_message", { to: "bob", text: "one" });
    const second = await a.ok("send_message", { to: "bob", text: "two", priority: "low" });
    await b.note(hasText("two"), "the second message");
    const { messages } = await b.ok("check_messages");
    expect(messages).toEqual([
      expect.objectContaining({ message_id: first.message_id, from: "alice", from_pubkey: members.alice!.pubkey, text: "one", priority: "next", encrypted: true, reply_to: null }),
      expect.objectContaining({ message_id: second.message_id, text: "two", priority: "low" }),
    ]);
    expect(await b.ok("check_messages")).toEqual({ messages: [] });
  });

  test("list_peers, set_status and channels", async () => {
    const { peers: listed } = await a.ok("list_peers");
    expect(listed).toEqual(
      expect.arrayContaining([
        { display_name: "alice", pubkey: members.alice!.pubkey, status: expect.any(String), sessions: 1, you: true },
        { display_name: "bob", pubkey: members.bob!.pubkey, status: expect.any(String), sessions: 1, you: false },
      ]),
    );
    expect(await b.ok("set_status", { status: "dnd" })).toEqual({ status: "dnd", status_source: "manual", applied: true });
    expect(await b.ok("set_status", { status: "idle" })).toEqual({ status: "idle", status_source: "manual", applied: true });

    expect(await b.ok("join_channel", { channel: "reviews" })).toEqual({ channel: "#reviews", joined: true });
    await a.ok("send_message", { to: "#reviews", text: "PR 12 is up" });
    const note = await b.note(hasText("PR 12 is up\n\n(sent unencrypted: only the broker vouches that it comes from alice)"), "the channel message");
    expect(note.meta).toMatchObject({ target: "#reviews", encrypted: "false", from: "alice" });
    expect(await b.ok("leave_channel", { channel: "#reviews" })).toEqual({ channel: "#reviews", joined: false });
    // 64 characters of name, with or without the "#"; one more is refused as invalid.
    const longest = "c".repeat(64);
    expect(await b.ok("join_channel", { channel: `#${longest}` })).toEqual({ channel: `#${longest}`, joined: true });
    expect(await b.ok("leave_channel", { channel: longest })).toEqual({ channel: `#${longest}`, joined: false });
    const tooLong = await b.call("join_channel", { channel: `${longest}c` });
    expect({ isError: tooLong.isError, code: (tooLong.data.error as { code?: string } | undefined)?.code }).toEqual({ isError: true, code: "invalid" });
  });

  test("a sender no name is known for is shown by its key's first 8 digits, and a reply to that name reaches it", async () => {
    // A member that sends over HTTP is never online: neither list nor presence names it.
    const app = await newIdentity();
    const enrolled = await broker.admin.addMember(meshSlug, { pubkey: app.publicKey, displayName: "http-app" });
    const token = await broker.admin.createApiToken(meshSlug, enrolled.id);
    const body = { targetSpec: members.alice!.pubkey, nonce: "plain", ciphertext: Buffer.from(JSON.stringify("ping over http")).toString("base64") };
    const posted = await fetch(`${broker.url}/v1/messages`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    expect(posted.status).toBe(201);
    const note = await a.note((n) => n.content.startsWith("ping over http"), "the HTTP sender's message");
    expect(note.meta.from).toBe(app.publicKey.slice(0, 8));
    const reply = await a.ok("send_message", { to: note.meta.from, text: "pong", reply_to: note.meta.message_id });
    expect(reply).toMatchObject({ target: app.publicKey, recipients: 1 });
    // Answered in kind: the message came unencrypted (the service holds no key to open a sealed answer), and so does the reply.
    // A message that answers none is sealed, as every direct one is.
    const sealed = await a.ok("send_message", { to: note.meta.from, text: "sealed" });
    const appPeer = await TestPeer.connect(broker.wsUrl, { identity: app, meshId: meshSlug });
    peers.push(appPeer);
    const pushes = await appPeer.waitForPushes(2);
    expect(pushes.map((p) => ({ messageId: p.messageId, replyTo: p.replyTo, nonce: p.nonce }))).toEqual([
      { messageId: reply.message_id, replyTo: note.meta.message_id, nonce: "plain" },
      { messageId: sealed.message_id, replyTo: null, nonce: expect.stringMatching(/^x1:/) },
    ]);
    expect(JSON.parse(Buffer.from(String(pushes[0]!.ciphertext), "base64").toString())).toBe("pong");
  });

  test("a message that cannot be decrypted is still notified, with meta error, never dropped", async () => {
    const raw = await TestPeer.connect(broker.wsUrl, { identity: members.alice!.identity, meshId: meshSlug });
    peers.push(raw);
    const ack = await raw.send(members.bob!.pubkey, { nonce: "x1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ciphertext: "Zm9yZ2Vk", priority: "now" });
    const note = await b.note((n) => n.meta.message_id === ack.messageId, "the unreadable message");
    expect(note.meta).toMatchObject({ error: "decrypt_failed", from: "alice", encrypted: "true" });
    expect(note.content).toStartWith("(a message from alice that could not be read: ");
  });

  test("session matching by session id: the hook finds bob's MCP presence, not a newer one in the same directory", async () => {
    const bob = projects.bob!;
    const decoy = await TestPeer.connect(broker.wsUrl, { identity: members.bob!.identity, meshId: meshSlug, cwd: bob.dir, pid: process.pid });
    peers.push(decoy);
    await hook(bob, "UserPromptSubmit", { prompt: "x" });
    await expectStatus(bob.sessionId, "working");
    await expectStatus(decoy.sessionId, "idle");
    await hook(bob, "Stop");
    await expectStatus(bob.sessionId, "idle");
  });

  test("the broker restarted mid-session: a send while it is down fails fast with isError, the next one after the reconnect succeeds", async () => {
    await broker.stop();
    const down = await a.call("send_message", { to: members.bob!.pubkey, text: "while down" });
    expect(down.isError).toBe(true);
    expect(down.data).toMatchObject({ error: { code: "unavailable" } });
    const from = a.logs.items.length;
    await broker.start();
    await a.logs.wait((l) => l.msg === "mcp reconnected", 30_000, "alice's reconnect", from);
    const sent = await a.ok("send_message", { to: "bob", text: "after the restart" });
    expect(sent.recipients).toBe(1);
    await b.note(hasText("after the restart"), "the message after the restart");
  });
});

test("session matching by pid and cwd: without a session id, the hook's $PPID (Claude Code) and cwd find the MCP server's presence", async () => {
  const dave = projects.dave!;
  const session = await startSession(dave, { sessionEnv: false });
  // Same member, same directory, newer, other parent: "newest with that cwd" alone would pick it.
  const decoy = await TestPeer.connect(broker.wsUrl, { identity: members.dave!.identity, meshId: meshSlug, cwd: dave.dir, pid: 777_002 });
  peers.push(decoy);
  const presences = () => broker.admin.peers(meshSlug).then((all) => all.filter((p) => p.pubkey === members.dave!.pubkey));
  const mine = (await presences()).find((p) => p.pid === process.pid);
  expect(mine).toMatchObject({ cwd: dave.dir });
  // Claude Code's session id, which the server was not told.
  await hook(dave, "UserPromptSubmit", { prompt: "x" });
  const statusByPid = new Map((await presences()).map((p) => [p.pid, p.status]));
  expect(statusByPid).toEqual(
    new Map([
      [process.pid, "working"],
      [777_002, "idle"],
    ]),
  );
  await session.close();
});

test("the MCP server killed with SIGKILL before it acked: the message is notified again after the restart, and listed once", async () => {
  const carol = projects.carol!;
  // Acks held back as long as the SDK allows: the kill comes after the notification and before the ack.
  const first = await startSession(carol, { extraArgs: ["--ack-delay-ms", String(MAX_ACK_DELAY_MS)] });
  const sender = await startSession(projects.alice!, { sessionId: `alice-second-${crypto.randomUUID()}` });
  const sent = await sender.ok("send_message", { to: "carol", text: "do not lose me", priority: "now" });
  await first.note(hasText("do not lose me"), "the first notification");
  const exited = new Promise<void>((resolve) => first.transport.onclose = () => resolve());
  first.kill("SIGKILL");
  await exited;

  const second = await startSession(carol);
  const again = await second.note(hasText("do not lose me"), "the notification after the restart");
  expect(again.meta.message_id).toBe(sent.message_id as string);
  const { messages } = await second.ok("check_messages");
  expect((messages as Array<{ message_id: string }>).filter((m) => m.message_id === sent.message_id)).toHaveLength(1);
  await Promise.all([second.close(), sender.close()]);
});
