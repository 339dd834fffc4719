// `switchboard hook install/uninstall` on Claude Code settings files, and the
// installed command itself: fed real Claude Code hook inputs through `sh -c`,
// it must move a live presence's status on a real broker.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { setupMesh, TestPeer, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CliHome, cliOk, eventually, lines, runCli } from "./support/cli.ts";

const EVENTS = ["UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop", "SubagentStop", "SessionEnd", "Notification"];
const MARKER = "# switchboard-hook";

type Settings = { hooks?: Record<string, Array<{ matcher?: string; hooks: Array<{ type: string; command: string }> }>> } & Record<
  string,
  unknown
>;

/** A settings file as a user might have it: other hooks, other keys, odd ordering. */
const ORIGINAL: Settings = {
  $schema: "https://json.schemastore.org/claude-code-settings.json",
  model: "opus",
  permissions: { allow: ["Bash(bun test:*)", "Read(./**)"], deny: ["Bash(rm -rf:*)"] },
  hooks: {
    PreToolUse: [
      { matcher: "Bash", hooks: [{ type: "command", command: "~/.claude/validate-bash.sh" }] },
      { matcher: "Edit|Write", hooks: [{ type: "command", command: "prettier --check \"$CLAUDE_FILE\"" }] },
    ],
    Stop: [{ hooks: [{ type: "command", command: "notify-send 'Claude is done'" }] }],
    PreCompact: [{ matcher: "manual", hooks: [{ type: "command", command: "echo compacting" }] }],
  },
  env: { FOO: "bar" },
};

let home: CliHome;
beforeAll(() => {
  home = new CliHome();
});
afterAll(() => home?.dispose());

function readJson(path: string): Settings {
  return JSON.parse(readFileSync(path, "utf8")) as Settings;
}

/** Our entries of a settings file, by event. */
function ours(settings: Settings): Record<string, string[]> {
  const found: Record<string, string[]> = {};
  for (const [event, groups] of Object.entries(settings.hooks ?? {})) {
    for (const group of groups) {
      for (const hook of group.hooks) if (hook.command.includes(MARKER)) (found[event] ??= []).push(hook.command);
    }
  }
  return found;
}

describe("hook install / uninstall on a settings file", () => {
  test("keeps every other hook and key, is idempotent, and uninstall restores the original", async () => {
    const path = home.path("project-a", ".claude", "settings.json");
    mkdirSync(join(path, ".."), { recursive: true });
    const originalText = `${JSON.stringify(ORIGINAL, null, 2)}\n`;
    writeFileSync(path, originalText);

    const url = "http://127.0.0.1:7911";
    await cliOk(home, ["hook", "install", "--settings", path, "--token", "sbh_first", "--url", url]);
    const once = readFileSync(path, "utf8");
    const installed = JSON.parse(once) as Settings;

    // One entry per event, in Claude Code's shape, each a curl to the hook route.
    const entries = ours(installed);
    expect(Object.keys(entries).sort()).toEqual([...EVENTS].sort());
    for (const event of EVENTS) {
      expect(entries[event]).toHaveLength(1);
      const group = installed.hooks?.[event]?.find((g) => g.hooks.some((h) => h.command.includes(MARKER)));
      expect(group).toEqual({ matcher: "", hooks: [{ type: "command", command: expect.any(String) }] });
      const command = entries[event]?.[0] ?? "";
      expect(command).toContain(`'${url}/hook/set-status'`);
      expect(command).toContain("'Authorization: Bearer sbh_first'");
      expect(command).toContain("X-Switchboard-Pid: $PPID");
      expect(command).toContain("--data-binary @-");
      expect(command).toContain("|| true");
    }
    // Everything that was there is still there, unchanged and in place.
    const { hooks: installedHooks, ...installedRest } = installed;
    const { hooks: originalHooks, ...originalRest } = ORIGINAL;
    expect(installedRest).toEqual(originalRest);
    expect(Object.keys(installed)).toEqual(Object.keys(ORIGINAL));
    for (const [event, groups] of Object.entries(originalHooks ?? {})) {
      expect(installedHooks?.[event]?.slice(0, groups.length)).toEqual(groups);
    }

    // Twice: the same file, byte for byte.
    await cliOk(home, ["hook", "install", "--settings", path, "--token", "sbh_first", "--url", url]);
    expect(readFileSync(path, "utf8")).toBe(once);

    // A new token or URL replaces ours instead of adding a second entry.
    await cliOk(home, ["hook", "install", "--settings", path, "--token", "sbh_second", "--url", "http://127.0.0.1:7912"]);
    const updated = ours(readJson(path));
    for (const event of EVENTS) {
      expect(updated[event]).toHaveLength(1);
      expect(updated[event]?.[0]).toContain("sbh_second");
      expect(updated[event]?.[0]).toContain("http://127.0.0.1:7912/hook/set-status");
      expect(updated[event]?.[0]).not.toContain("sbh_first");
    }

    const removed = await cliOk(home, ["hook", "uninstall", "--settings", path]);
    expect(removed).toMatch(/^removed 7 switchboard hook\(s\) from /);
    expect(readJson(path)).toEqual(ORIGINAL);
    expect(readFileSync(path, "utf8")).toBe(originalText);

    // Nothing of ours left: a second uninstall changes nothing.
    expect(await cliOk(home, ["hook", "uninstall", "--settings", path])).toMatch(/^no switchboard hooks in /);
    expect(readFileSync(path, "utf8")).toBe(originalText);
  });

  test("a missing file and its directories are created; uninstall leaves no empty hooks behind", async () => {
    const path = home.path("fresh", "deep", ".claude", "settings.json");
    await cliOk(home, ["hook", "install", "--settings", path, "--token", "sbh_x"]);
    expect(Object.keys(ours(readJson(path))).sort()).toEqual([...EVENTS].sort());
    await cliOk(home, ["hook", "uninstall", "--settings", path]);
    expect(readJson(path)).toEqual({});
  });

  test("--scope project writes ./.claude/settings.json, --scope user ~/.claude/settings.json", async () => {
    const project = home.path("project-b");
    mkdirSync(project, { recursive: true });
    await cliOk(home, ["hook", "install", "--token", "sbh_p"], { cwd: project });
    expect(Object.keys(ours(readJson(join(project, ".claude", "settings.json"))))).toHaveLength(7);
    await cliOk(home, ["hook", "install", "--scope", "user", "--token", "sbh_u"], { cwd: project });
    expect(Object.keys(ours(readJson(home.path(".claude", "settings.json"))))).toHaveLength(7);
    await cliOk(home, ["hook", "uninstall", "--scope", "user"], { cwd: project });
    expect(readJson(home.path(".claude", "settings.json"))).toEqual({});
    // The project file was left alone.
    expect(Object.keys(ours(readJson(join(project, ".claude", "settings.json"))))).toHaveLength(7);
  });

  test("a settings file that is not JSON is refused and left untouched", async () => {
    const path = home.path("broken.json");
    writeFileSync(path, "{ \"hooks\": { oops");
    const result = await runCli(home, ["hook", "install", "--settings", path, "--token", "t"]);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/^switchboard: .*broken\.json is not valid JSON.*not touching it$/)]);
    expect(readFileSync(path, "utf8")).toBe("{ \"hooks\": { oops");
  });
});

describe("the installed command against a real broker", () => {
  const broker = useTestBroker();
  const peers: TestPeer[] = [];
  afterEach(async () => {
    await Promise.all(peers.splice(0).map((p) => p.close()));
  });

  /** broker_hook_requests_total: counted as a request reaches the hook route. */
  async function hookRequests(): Promise<number> {
    const text = await (await fetch(`${broker.url}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith("broker_hook_requests_total "));
    if (line === undefined) throw new Error("no broker_hook_requests_total in /metrics");
    return Number(line.split(" ")[1]);
  }

  /** Installs the hooks with `token` and returns the command installed for `event`, read back from the file. */
  async function installedCommand(token: string, event: string, url = broker.url): Promise<string> {
    const path = home.path(`settings-${crypto.randomUUID()}.json`);
    writeFileSync(path, `${JSON.stringify(ORIGINAL, null, 2)}\n`);
    await cliOk(home, ["hook", "install", "--settings", path, "--token", token, "--url", url]);
    const command = ours(readJson(path))[event]?.[0];
    if (command === undefined) throw new Error(`no ${event} hook installed`);
    return command;
  }

  /** Runs a hook command as Claude Code does: through a shell, the hook input on stdin. */
  async function runHook(command: string, input: object): Promise<{ code: number; stdout: string; stderr: string }> {
    const proc = Bun.spawn(["sh", "-c", command], {
      stdin: new TextEncoder().encode(JSON.stringify(input)),
      stdout: "pipe",
      stderr: "pipe",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr };
  }

  async function statusOf(mesh: string, sessionId: string): Promise<{ status: string; statusSource: string } | undefined> {
    const presence = (await broker.admin.peers(mesh)).find((p) => p.sessionId === sessionId);
    return presence && { status: presence.status, statusSource: presence.statusSource };
  }

  async function expectStatus(mesh: string, sessionId: string, status: string): Promise<void> {
    const seen = await eventually(async () => {
      const now = await statusOf(mesh, sessionId);
      return now?.status === status ? now : undefined;
    }, `status ${status} of ${sessionId}`);
    expect(seen).toEqual({ status, statusSource: "hook" });
  }

  test("UserPromptSubmit, PreToolUse, Stop and Notification inputs set working / idle on the presence", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["coder"] });
    const [coder] = members as [SetupMember];
    const token = await broker.admin.createHookToken(mesh.id, coder.id);
    const sessionId = crypto.randomUUID();
    const cwd = `/home/dev/projects/${mesh.slug}`;
    peers.push(await TestPeer.connect(broker.wsUrl, { identity: coder.identity, meshId: mesh.id, sessionId, cwd, pid: 777_001 }));
    expect(await statusOf(mesh.id, sessionId)).toMatchObject({ status: "idle" });

    const common = {
      session_id: sessionId,
      transcript_path: `/home/dev/.claude/projects/-home-dev-projects-${mesh.slug}/${sessionId}.jsonl`,
      cwd,
      permission_mode: "default",
    };
    const steps: Array<[string, object, string]> = [
      ["UserPromptSubmit", { hook_event_name: "UserPromptSubmit", prompt: "Make the failing test in parser.test.ts pass" }, "working"],
      ["Stop", { hook_event_name: "Stop", stop_hook_active: false }, "idle"],
      [
        "PreToolUse",
        {
          hook_event_name: "PreToolUse",
          tool_name: "Bash",
          tool_input: { command: "bun test parser.test.ts", description: "Run the parser tests" },
        },
        "working",
      ],
      ["Notification", { hook_event_name: "Notification", message: "Claude needs your permission to use Bash" }, "idle"],
    ];
    for (const [event, fields, expected] of steps) {
      const command = await installedCommand(token, event);
      const result = await runHook(command, { ...common, ...fields });
      expect(result).toEqual({ code: 0, stdout: "", stderr: "" });
      await expectStatus(mesh.id, sessionId, expected);
    }
  });

  test("without a session id the hook finds the presence by its pid ($PPID of the hook shell) and cwd", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["coder"] });
    const [coder] = members as [SetupMember];
    const token = await broker.admin.createHookToken(mesh.id, coder.id);
    const cwd = `/home/dev/projects/${mesh.slug}`;
    // Both in the same cwd; the one started by "Claude Code" (this process, the hook's parent) is the older one,
    // so "newest with that cwd" would pick the wrong presence.
    const mine = crypto.randomUUID();
    const other = crypto.randomUUID();
    peers.push(await TestPeer.connect(broker.wsUrl, { identity: coder.identity, meshId: mesh.id, sessionId: mine, cwd, pid: process.pid }));
    await Bun.sleep(20);
    peers.push(await TestPeer.connect(broker.wsUrl, { identity: coder.identity, meshId: mesh.id, sessionId: other, cwd, pid: 777_002 }));

    const command = await installedCommand(token, "PreToolUse");
    const result = await runHook(command, { cwd, hook_event_name: "PreToolUse", tool_name: "Read", tool_input: { file_path: `${cwd}/a.ts` } });
    expect(result.code).toBe(0);
    await expectStatus(mesh.id, mine, "working");
    expect(await statusOf(mesh.id, other)).toMatchObject({ status: "idle" });
  });

  test("a broker that is down neither fails nor blocks the hook", async () => {
    const command = await installedCommand("sbh_whatever", "Stop", "http://127.0.0.1:9");
    const result = await runHook(command, { session_id: crypto.randomUUID(), cwd: "/tmp", hook_event_name: "Stop" });
    expect(result).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  test("a wrong token changes nothing and still exits 0", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["coder"] });
    const [coder] = members as [SetupMember];
    const sessionId = crypto.randomUUID();
    const cwd = `/home/dev/projects/${mesh.slug}`;
    peers.push(await TestPeer.connect(broker.wsUrl, { identity: coder.identity, meshId: mesh.id, sessionId, cwd }));
    const command = await installedCommand("sbh_not_a_real_token", "UserPromptSubmit");
    const before = await hookRequests();
    const result = await runHook(command, { session_id: sessionId, cwd, hook_event_name: "UserPromptSubmit", prompt: "hi" });
    expect(result.code).toBe(0);
    // The hook's curl reached the broker and has had its answer: what the request changed is in.
    expect(await hookRequests()).toBe(before + 1);
    expect(await statusOf(mesh.id, sessionId)).toMatchObject({ status: "idle" });
  });
});

test("the settings file is written atomically: no temp file is left next to it", async () => {
  const dir = home.path("atomic", ".claude");
  await cliOk(home, ["hook", "install", "--settings", join(dir, "settings.json"), "--token", "t"]);
  const { readdirSync } = await import("node:fs");
  expect(readdirSync(dir)).toEqual(["settings.json"]);
  expect(existsSync(join(dir, "settings.json"))).toBe(true);
});
