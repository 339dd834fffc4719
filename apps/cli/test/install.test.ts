// `switchboard install` / `uninstall` on Claude Code's files, and the hook
// command they install: what it sends (and does not), where the token lives,
// that other servers, hooks and keys are left byte for byte, and that
// uninstall takes back exactly what install added.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CliHome, cliOk, lines, runCli } from "./support/cli.ts";
import { installedHook, runHook } from "./support/mcp.ts";

const TOKEN = "sbh_install_test_token_4f1e2d3c";
const URL_ = "http://127.0.0.1:7911";
const EVENTS = ["UserPromptSubmit", "Stop", "StopFailure", "Notification"];
const CLI_MAIN = join(import.meta.dir, "..", "src", "main.ts");

let home: CliHome;
let keyFile: string;
beforeAll(() => {
  home = new CliHome();
  keyFile = home.path("me.json");
  writeFileSync(keyFile, JSON.stringify({ secretKey: "11".repeat(32) }), { mode: 0o600 });
});
afterAll(() => home?.dispose());

const installArgs = (...extra: string[]) => ["install", "--url", URL_, "--mesh", "demo", "--key", keyFile, "--token", TOKEN, ...extra];

function project(name: string): string {
  const dir = home.path("projects", name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function write(path: string, text: string): string {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  return text;
}

/** Every file below dir, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** The token file the installed hooks of a settings file read. */
function tokenFileOf(settingsFile: string): string {
  const file = /'--token-file' '([^']+)'/.exec(installedHook(settingsFile, "Stop"))?.[1];
  if (file === undefined) throw new Error(`no --token-file in the hook of ${settingsFile}`);
  return file;
}

type Hooks = Record<string, Array<{ matcher?: string; hooks: Array<{ type: string; command: string; timeout?: number }> }>>;
const readJson = (path: string) => JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown> & { hooks?: Hooks };

/** Other people's hooks and keys, in a shape Claude Code writes. */
const SETTINGS_LOCAL = `${JSON.stringify(
  {
    permissions: { allow: ["Bash(bun test:*)"], deny: ["Read(./.env)"] },
    hooks: {
      Stop: [{ hooks: [{ type: "command", command: "notify-send 'Claude is done'" }] }],
      PreToolUse: [{ matcher: "Bash", hooks: [{ type: "command", command: "~/.claude/validate-bash.sh" }] }],
    },
    env: { FOO: "bar" },
  },
  null,
  2,
)}\n`;
/** Someone else's .mcp.json, indented with four spaces and without a final newline. */
const MCP_JSON = JSON.stringify({ mcpServers: { docs: { type: "stdio", command: "npx", args: ["-y", "docs-mcp"], env: { A: "1" } } } }, null, 4);

describe("project scope", () => {
  test("installs the MCP server and four hooks, keeps everything else, is idempotent; uninstall restores the files byte for byte", async () => {
    const dir = project("existing");
    const mcpFile = write(join(dir, ".mcp.json"), MCP_JSON) && join(dir, ".mcp.json");
    const settingsFile = join(dir, ".claude", "settings.local.json");
    write(settingsFile, SETTINGS_LOCAL);

    const printed = await cliOk(home, installArgs(), { cwd: dir });
    expect(lines(printed).at(-1)).toBe("  claude --dangerously-load-development-channels server:switchboard");

    const mcp = readJson(mcpFile) as { mcpServers: Record<string, unknown> };
    expect(mcp.mcpServers).toEqual({
      docs: { type: "stdio", command: "npx", args: ["-y", "docs-mcp"], env: { A: "1" } },
      switchboard: { type: "stdio", command: process.execPath, args: [CLI_MAIN, "mcp", "--url", URL_, "--mesh", "demo", "--key", keyFile] },
    });
    expect(readFileSync(mcpFile, "utf8")).toStartWith('{\n    "mcpServers": {\n        "docs"');

    const settings = readJson(settingsFile);
    expect(settings.permissions).toEqual({ allow: ["Bash(bun test:*)"], deny: ["Read(./.env)"] });
    expect(settings.env).toEqual({ FOO: "bar" });
    expect(Object.keys(settings.hooks ?? {}).sort()).toEqual(["Notification", "PreToolUse", "Stop", "StopFailure", "UserPromptSubmit"]);
    expect(settings.hooks?.PreToolUse).toEqual([{ matcher: "Bash", hooks: [{ type: "command", command: "~/.claude/validate-bash.sh" }] }]);
    expect(settings.hooks?.Stop?.[0]).toEqual({ hooks: [{ type: "command", command: "notify-send 'Claude is done'" }] });
    for (const event of EVENTS) {
      const ours = settings.hooks?.[event]?.filter((g) => g.hooks.some((h) => h.command.includes("# switchboard-hook"))) ?? [];
      expect({ event, ours }).toEqual({
        event,
        ours: [
          {
            ...(event === "Notification" ? { matcher: "idle_prompt" } : {}),
            hooks: [{ type: "command", command: expect.stringContaining("hook' 'forward'"), timeout: 10 }],
          },
        ],
      });
    }
    const command = installedHook(settingsFile, "Stop");
    expect(command).toContain('--pid "$PPID"');
    expect(command).toContain(`'${URL_}'`);
    expect(command).toEndWith(">/dev/null 2>&1 || true # switchboard-hook");

    // The token: in one file of mode 0600 under ~/.config/switchboard, in no other file anywhere.
    const withToken = filesUnder(home.dir).filter((f) => readFileSync(f, "utf8").includes(TOKEN));
    expect(withToken).toHaveLength(1);
    expect(withToken[0]).toStartWith(home.path(".config", "switchboard", "hooks"));
    expect(statSync(withToken[0]!).mode & 0o777).toBe(0o600);
    expect(command).toContain(`'${withToken[0]}'`);

    // Twice: the same files, byte for byte.
    const once = [readFileSync(mcpFile, "utf8"), readFileSync(settingsFile, "utf8")];
    await cliOk(home, installArgs(), { cwd: dir });
    expect([readFileSync(mcpFile, "utf8"), readFileSync(settingsFile, "utf8")]).toEqual(once);

    const removed = await cliOk(home, ["uninstall"], { cwd: dir });
    expect(removed).toStartWith('removed 4 hook(s), the MCP server "switchboard"');
    expect(readFileSync(mcpFile, "utf8")).toBe(MCP_JSON);
    expect(readFileSync(settingsFile, "utf8")).toBe(SETTINGS_LOCAL);
    expect(existsSync(withToken[0]!)).toBe(false);
    expect(filesUnder(home.dir).filter((f) => readFileSync(f, "utf8").includes(TOKEN))).toEqual([]);
  });

  test("in an empty project it creates the files, and uninstall removes them and the directories it made", async () => {
    const dir = project("empty");
    await cliOk(home, installArgs(), { cwd: dir });
    expect(readdirSync(dir).sort()).toEqual([".claude", ".mcp.json"]);
    expect(readdirSync(join(dir, ".claude"))).toEqual(["settings.local.json"]);
    await cliOk(home, ["uninstall"], { cwd: dir });
    expect(readdirSync(dir)).toEqual([]);
    // A second uninstall finds nothing to do and changes nothing.
    expect(await cliOk(home, ["uninstall"], { cwd: dir })).toStartWith("removed 0 hook(s), no MCP server");
    expect(readdirSync(dir)).toEqual([]);
  });

  test("files that were there but blank (empty, or whitespace alone) are given back blank by uninstall, byte for byte", async () => {
    const dir = project("blank-files");
    const mcpFile = join(dir, ".mcp.json");
    const settingsFile = join(dir, ".claude", "settings.local.json");
    const before = { mcp: write(mcpFile, ""), settings: write(settingsFile, "\n  \n") };
    chmodSync(mcpFile, 0o644);
    await cliOk(home, installArgs(), { cwd: dir });
    expect(Object.keys(readJson(settingsFile).hooks ?? {}).sort()).toEqual([...EVENTS].sort());
    // Installed again, the files are no longer blank: what they held before the first install is still what comes back.
    await cliOk(home, installArgs(), { cwd: dir });
    await cliOk(home, ["uninstall"], { cwd: dir });
    expect({ mcp: readFileSync(mcpFile, "utf8"), settings: readFileSync(settingsFile, "utf8") }).toEqual(before);
    expect(statSync(mcpFile).mode & 0o777).toBe(0o644);
  });

  test("installed again after Claude Code and the user added to its files, only what is ours may change: nothing moves", async () => {
    const dir = project("added-since");
    const settingsFile = join(dir, ".claude", "settings.local.json");
    await cliOk(home, installArgs(), { cwd: dir });
    // What a session writes there (the approval of the project's server), and hooks the user added after ours.
    const settings = readJson(settingsFile) as Record<string, unknown> & { hooks: Hooks };
    settings.hooks.Stop?.push({ hooks: [{ type: "command", command: "notify-send done" }] });
    settings.hooks.PreToolUse = [{ matcher: "Bash", hooks: [{ type: "command", command: "~/.claude/validate-bash.sh" }] }];
    settings.enabledMcpjsonServers = ["switchboard"];
    const before = write(settingsFile, `${JSON.stringify(settings, null, 2)}\n`);
    await cliOk(home, installArgs(), { cwd: dir });
    expect(readFileSync(settingsFile, "utf8")).toBe(before);
    // A new URL changes our entries, in their places.
    await cliOk(home, installArgs("--url", "http://127.0.0.1:7912"), { cwd: dir });
    expect(readFileSync(settingsFile, "utf8")).toBe(before.replaceAll(`'${URL_}'`, "'http://127.0.0.1:7912'"));
  });

  test("files written on one line stay on one line, and uninstall gives them back byte for byte", async () => {
    const dir = project("one-line");
    const mcpFile = join(dir, ".mcp.json");
    const settingsFile = join(dir, ".claude", "settings.local.json");
    const mcpBefore = write(mcpFile, JSON.stringify(JSON.parse(MCP_JSON)));
    const settingsBefore = write(settingsFile, `${JSON.stringify(JSON.parse(SETTINGS_LOCAL))}\n`);
    await cliOk(home, installArgs(), { cwd: dir });
    expect(lines(readFileSync(mcpFile, "utf8"))).toHaveLength(1);
    expect(lines(readFileSync(settingsFile, "utf8"))).toHaveLength(1);
    expect(Object.keys(readJson(mcpFile).mcpServers as object)).toEqual(["docs", "switchboard"]);
    expect(installedHook(settingsFile, "Stop")).toEndWith("# switchboard-hook");
    await cliOk(home, ["uninstall"], { cwd: dir });
    expect(readFileSync(mcpFile, "utf8")).toBe(mcpBefore);
    expect(readFileSync(settingsFile, "utf8")).toBe(settingsBefore);
  });

  test("`hook install` / `hook uninstall` are the same commands", async () => {
    const dir = project("alias");
    await cliOk(home, ["hook", ...installArgs()], { cwd: dir });
    expect(Object.keys(readJson(join(dir, ".claude", "settings.local.json")).hooks ?? {}).sort()).toEqual([...EVENTS].sort());
    await cliOk(home, ["hook", "uninstall"], { cwd: dir });
    expect(readdirSync(dir)).toEqual([]);
  });

  test("a server of our name that was there before is put back by uninstall, byte for byte", async () => {
    const dir = project("own-switchboard");
    const mcpFile = join(dir, ".mcp.json");
    const original = write(mcpFile, JSON.stringify({ mcpServers: { switchboard: { type: "http", url: "https://example.test/mine" } } }, null, 2));
    await cliOk(home, installArgs(), { cwd: dir });
    expect((readJson(mcpFile) as { mcpServers: { switchboard: { type: string } } }).mcpServers.switchboard.type).toBe("stdio");
    // Installed twice, the first install's note of what it replaced stands.
    await cliOk(home, installArgs(), { cwd: dir });
    const printed = await cliOk(home, ["uninstall"], { cwd: dir });
    expect(printed).toContain("the one it had replaced is back");
    expect(readFileSync(mcpFile, "utf8")).toBe(original);
  });

  test("installed again, our server entry keeps what the user added to it (env, timeout); only command and args are renewed", async () => {
    const dir = project("tuned");
    const mcpFile = join(dir, ".mcp.json");
    await cliOk(home, installArgs(), { cwd: dir });
    const first = readJson(mcpFile) as { mcpServers: { switchboard: Record<string, unknown> } };
    first.mcpServers.switchboard.env = { LOG_LEVEL: "debug" };
    first.mcpServers.switchboard.timeout = 30_000;
    writeFileSync(mcpFile, JSON.stringify(first, null, 2));
    await cliOk(home, installArgs("--mesh", "other"), { cwd: dir });
    const entry = (readJson(mcpFile) as { mcpServers: { switchboard: { args: string[]; env: unknown; timeout: unknown } } }).mcpServers.switchboard;
    expect(entry).toMatchObject({ type: "stdio", env: { LOG_LEVEL: "debug" }, timeout: 30_000 });
    expect(entry.args).toContain("other");
    await cliOk(home, ["uninstall"], { cwd: dir });
    expect(existsSync(mcpFile)).toBe(false);
  });

  test("installed again over our entry made a remote one, the stdio entry keeps what the user added but no key of a remote server", async () => {
    const dir = project("made-remote");
    const mcpFile = join(dir, ".mcp.json");
    await cliOk(home, installArgs(), { cwd: dir });
    const first = readJson(mcpFile) as { mcpServers: { switchboard: Record<string, unknown> } };
    first.mcpServers.switchboard = {
      ...first.mcpServers.switchboard,
      type: "http",
      url: "https://example.test/mcp",
      headers: { Authorization: "Bearer x" },
      headersHelper: "~/bin/mcp-headers",
      oauth: { clientId: "abc", callbackPort: 8080 },
      env: { LOG_LEVEL: "debug" },
      timeout: 30_000,
    };
    writeFileSync(mcpFile, JSON.stringify(first, null, 2));
    await cliOk(home, installArgs(), { cwd: dir });
    const entry = (readJson(mcpFile) as { mcpServers: { switchboard: Record<string, unknown> } }).mcpServers.switchboard;
    expect(Object.keys(entry).sort()).toEqual(["args", "command", "env", "timeout", "type"]);
    expect(entry).toMatchObject({ type: "stdio", env: { LOG_LEVEL: "debug" }, timeout: 30_000 });
    await cliOk(home, ["uninstall"], { cwd: dir });
    expect(existsSync(mcpFile)).toBe(false);
  });

  test("hooks an earlier version wrote into the shared .claude/settings.json, token inline, are taken out", async () => {
    const dir = project("legacy");
    const shared = join(dir, ".claude", "settings.json");
    const legacyCommand =
      "curl -sS -m 5 -X POST 'http://127.0.0.1:7900/hook/set-status' -H 'Authorization: Bearer sbh_old_inline' --data-binary @- >/dev/null 2>&1 || true # switchboard-hook";
    const kept = { model: "opus", hooks: { Stop: [{ hooks: [{ type: "command", command: "echo done" }] }] } };
    write(
      shared,
      `${JSON.stringify(
        {
          model: "opus",
          hooks: {
            PreToolUse: [{ matcher: "", hooks: [{ type: "command", command: legacyCommand }] }],
            Stop: [{ hooks: [{ type: "command", command: "echo done" }] }, { matcher: "", hooks: [{ type: "command", command: legacyCommand }] }],
          },
        },
        null,
        2,
      )}\n`,
    );
    await cliOk(home, installArgs(), { cwd: dir });
    expect(readFileSync(shared, "utf8")).toBe(`${JSON.stringify(kept, null, 2)}\n`);
    await cliOk(home, ["uninstall"], { cwd: dir });
    expect(readdirSync(dir)).toEqual([".claude"]);
    expect(readdirSync(join(dir, ".claude"))).toEqual(["settings.json"]);
  });

  test("uninstall leaves a server named switchboard that install did not write: none installed, or replaced by the user since", async () => {
    const dir = project("not-ours");
    const mcpFile = join(dir, ".mcp.json");
    const theirs = write(mcpFile, JSON.stringify({ mcpServers: { switchboard: { command: "my-own-switchboard-thing", args: ["x"] } } }, null, 2));
    expect(await cliOk(home, ["uninstall"], { cwd: dir })).toStartWith("removed 0 hook(s), no MCP server");
    expect(readFileSync(mcpFile, "utf8")).toBe(theirs);

    await cliOk(home, installArgs(), { cwd: dir });
    // After the install the user put an entry of their own in its place.
    const replaced = write(mcpFile, JSON.stringify({ mcpServers: { switchboard: { command: "my-newer-thing", args: [] } } }, null, 2));
    expect(await cliOk(home, ["uninstall"], { cwd: dir })).toStartWith("removed 4 hook(s), no MCP server");
    expect(readFileSync(mcpFile, "utf8")).toBe(replaced);
  });

  test("moved after its install, or its record lost: uninstall there takes out our server and hooks and the files that held only them", async () => {
    const from = project("moved-from");
    await cliOk(home, installArgs(), { cwd: from });
    const oldToken = tokenFileOf(join(from, ".claude", "settings.local.json"));
    const oldRecord = oldToken.replace(/\.token$/, ".install.json");
    const dir = home.path("projects", "moved-to");
    renameSync(from, dir);
    const moved = await runCli(home, ["uninstall"], { cwd: dir });
    expect(moved.code).toBe(0);
    expect(moved.stdout).toStartWith('removed 4 hook(s), the MCP server "switchboard"');
    expect(readdirSync(dir)).toEqual([]);
    // The install made for the old directory may still serve a copy of it: its files stay, and the user hears of them.
    expect([existsSync(oldToken), existsSync(oldRecord)]).toEqual([true, true]);
    expect(lines(moved.stderr)).toEqual([
      `switchboard: warning: the hooks taken out were installed for another directory (this project was moved or copied from there); left as they are: ${oldToken}, ${oldRecord} (run \`switchboard uninstall\` in that directory, or remove them by hand if it is gone)`,
    ]);
    rmSync(oldToken);
    rmSync(oldRecord);

    await cliOk(home, installArgs(), { cwd: dir });
    const token = tokenFileOf(join(dir, ".claude", "settings.local.json"));
    rmSync(token.replace(/\.token$/, ".install.json"));
    const lost = await runCli(home, ["uninstall"], { cwd: dir });
    expect(lost).toEqual({ code: 0, stdout: expect.stringMatching(/^removed 4 hook\(s\), the MCP server "switchboard", /), stderr: "" });
    expect(readdirSync(dir)).toEqual([]);
    expect(existsSync(token)).toBe(false);
  });

  test("installed again where an earlier install's server and hooks are (moved, record lost), it does not take them for the user's", async () => {
    const from = project("moved-again-from");
    const mcpBefore = write(join(from, ".mcp.json"), MCP_JSON);
    const settingsBefore = write(join(from, ".claude", "settings.local.json"), SETTINGS_LOCAL);
    await cliOk(home, installArgs(), { cwd: from });
    const oldToken = tokenFileOf(join(from, ".claude", "settings.local.json"));
    const dir = home.path("projects", "moved-again-to");
    renameSync(from, dir);
    // What the user added to our entry stays ours to keep, as in any install run again.
    const mcpFile = join(dir, ".mcp.json");
    const tuned = readJson(mcpFile) as { mcpServers: { switchboard: Record<string, unknown> } };
    tuned.mcpServers.switchboard.env = { LOG_LEVEL: "debug" };
    writeFileSync(mcpFile, JSON.stringify(tuned, null, 4));
    const installed = await runCli(home, installArgs(), { cwd: dir });
    expect(installed.code).toBe(0);
    expect(lines(installed.stderr)).toEqual([expect.stringContaining(`the hooks replaced were installed for another directory (this project was moved or copied from there); left as they are: ${oldToken}`)]);
    expect((readJson(mcpFile) as { mcpServers: { switchboard: { env?: unknown } } }).mcpServers.switchboard.env).toEqual({ LOG_LEVEL: "debug" });
    expect(await cliOk(home, ["uninstall"], { cwd: dir })).toStartWith('removed 4 hook(s), the MCP server "switchboard", ');
    expect(readFileSync(mcpFile, "utf8")).toBe(mcpBefore);
    expect(readFileSync(join(dir, ".claude", "settings.local.json"), "utf8")).toBe(settingsBefore);
    rmSync(oldToken);
    rmSync(oldToken.replace(/\.token$/, ".install.json"));

    // In a project that held nothing else, the files and the directory it made go too.
    const empty = project("lost-record-again");
    await cliOk(home, installArgs(), { cwd: empty });
    rmSync(tokenFileOf(join(empty, ".claude", "settings.local.json")).replace(/\.token$/, ".install.json"));
    await cliOk(home, installArgs(), { cwd: empty });
    await cliOk(home, ["uninstall"], { cwd: empty });
    expect(readdirSync(empty)).toEqual([]);
  });

  test("a server entry the user wrote by hand that runs this command's mcp, with no hooks of ours beside it, is theirs: put back by uninstall", async () => {
    // The command and arguments an install writes, from an install elsewhere.
    const probe = project("hand-written-probe");
    await cliOk(home, installArgs(), { cwd: probe });
    const ours = (readJson(join(probe, ".mcp.json")) as { mcpServers: { switchboard: { command: string; args: string[] } } }).mcpServers.switchboard;
    await cliOk(home, ["uninstall"], { cwd: probe });

    const dir = project("hand-written");
    const self = ours.args.slice(0, ours.args.indexOf("mcp") + 1);
    const theirs = { command: ours.command, args: [...self, "--mesh", "my-other-mesh", "--key", "/keys/mine.json"], env: { X: "1" } };
    const mcpBefore = write(join(dir, ".mcp.json"), `${JSON.stringify({ mcpServers: { switchboard: theirs } }, null, 2)}\n`);
    await cliOk(home, installArgs(), { cwd: dir });
    expect((readJson(join(dir, ".mcp.json")) as { mcpServers: { switchboard: { args: string[] } } }).mcpServers.switchboard.args).toContain("demo");
    expect(await cliOk(home, ["uninstall"], { cwd: dir })).toContain("the one it had replaced is back");
    expect(readFileSync(join(dir, ".mcp.json"), "utf8")).toBe(mcpBefore);
  });

  test("empty objects that were there before install are there after uninstall", async () => {
    const dir = project("empty-objects");
    const mcpFile = join(dir, ".mcp.json");
    const settingsFile = join(dir, ".claude", "settings.local.json");
    const mcpBefore = write(mcpFile, `${JSON.stringify({ mcpServers: {} }, null, 2)}\n`);
    const settingsBefore = write(settingsFile, `${JSON.stringify({ hooks: { Stop: [] } }, null, 2)}\n`);
    await cliOk(home, installArgs(), { cwd: dir });
    await cliOk(home, installArgs(), { cwd: dir });
    await cliOk(home, ["uninstall"], { cwd: dir });
    expect(readFileSync(mcpFile, "utf8")).toBe(mcpBefore);
    expect(readFileSync(settingsFile, "utf8")).toBe(settingsBefore);

    write(settingsFile, `${JSON.stringify({ hooks: {} }, null, 2)}\n`);
    await cliOk(home, installArgs(), { cwd: dir });
    await cliOk(home, ["uninstall"], { cwd: dir });
    expect(readFileSync(settingsFile, "utf8")).toBe(`${JSON.stringify({ hooks: {} }, null, 2)}\n`);
  });

  test("a shared .claude/settings.json that is not JSON is only read for old hooks: install and uninstall warn, leave it, and finish", async () => {
    const dir = project("broken-shared");
    const shared = join(dir, ".claude", "settings.json");
    const broken = write(shared, '{ "model": "opus", oops');
    const installed = await runCli(home, installArgs(), { cwd: dir });
    expect(installed.code).toBe(0);
    expect(lines(installed.stderr)).toEqual([
      expect.stringMatching(/^switchboard: warning: .*\/\.claude\/settings\.json is not valid JSON.*; not touching it \(it is only read to take out hooks of earlier versions\)$/),
    ]);
    const tokenFile = tokenFileOf(join(dir, ".claude", "settings.local.json"));
    expect(existsSync(tokenFile)).toBe(true);

    const removed = await runCli(home, ["uninstall"], { cwd: dir });
    expect(removed.code).toBe(0);
    expect(removed.stdout).toStartWith('removed 4 hook(s), the MCP server "switchboard"');
    expect(lines(removed.stderr)).toEqual([expect.stringMatching(/^switchboard: warning: .*settings\.json is not valid JSON/)]);
    expect(readFileSync(shared, "utf8")).toBe(broken);
    expect(readdirSync(dir)).toEqual([".claude"]);
    expect(readdirSync(join(dir, ".claude"))).toEqual(["settings.json"]);
    expect(existsSync(tokenFile)).toBe(false);
    // Nothing is left behind for a later uninstall to trip over.
    expect((await runCli(home, ["uninstall"], { cwd: dir })).code).toBe(0);
  });

  test("a settings file reached through a symlink is written through it, and files keep their mode whatever the umask", async () => {
    const dir = project("modes");
    const mcpFile = join(dir, ".mcp.json");
    const mcpBefore = write(mcpFile, MCP_JSON);
    chmodSync(mcpFile, 0o640);
    // Dotfiles kept elsewhere, linked in: the link stays and its target is what changes.
    const target = home.path("dotfiles", "modes-settings.local.json");
    const settingsBefore = write(target, SETTINGS_LOCAL);
    chmodSync(target, 0o664);
    mkdirSync(join(dir, ".claude"));
    const settingsFile = join(dir, ".claude", "settings.local.json");
    symlinkSync(target, settingsFile);
    // A umask that clears more than the files' modes do: a mode kept is not one the umask happened to allow.
    const underUmask = async (args: string[]) => {
      const proc = Bun.spawn(["sh", "-c", 'umask 077 && exec "$0" "$@"', "bun", CLI_MAIN, ...args], { cwd: dir, env: home.env(), stdout: "pipe", stderr: "pipe" });
      const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
      expect({ args, code, stderr }).toEqual({ args, code: 0, stderr: "" });
    };
    await underUmask(installArgs());
    expect(lstatSync(settingsFile).isSymbolicLink()).toBe(true);
    expect(readJson(target).hooks?.Stop).toHaveLength(2);
    expect({ mcp: statSync(mcpFile).mode & 0o777, settings: statSync(target).mode & 0o777 }).toEqual({ mcp: 0o640, settings: 0o664 });
    await underUmask(["uninstall"]);
    expect(lstatSync(settingsFile).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, "utf8")).toBe(settingsBefore);
    expect(readFileSync(mcpFile, "utf8")).toBe(mcpBefore);
    expect({ mcp: statSync(mcpFile).mode & 0o777, settings: statSync(target).mode & 0o777 }).toEqual({ mcp: 0o640, settings: 0o664 });
  });

  test("files that are symlinks to files not there yet are created through them; uninstall removes what install created and leaves the links", async () => {
    const dir = project("dangling");
    // Relative, read from the link's directory (not the working one), to a directory not there yet.
    const settingsTarget = home.path("projects", "dangling-dotfiles", "settings.local.json");
    mkdirSync(join(dir, ".claude"));
    const settingsFile = join(dir, ".claude", "settings.local.json");
    symlinkSync(join("..", "..", "dangling-dotfiles", "settings.local.json"), settingsFile);
    // Two links in a row.
    const mcpTarget = home.path("links", "mcp.json");
    mkdirSync(home.path("links"));
    symlinkSync("mcp.json", home.path("links", "mcp-link"));
    const mcpFile = join(dir, ".mcp.json");
    symlinkSync(home.path("links", "mcp-link"), mcpFile);
    const links = () => [lstatSync(settingsFile).isSymbolicLink(), lstatSync(mcpFile).isSymbolicLink(), lstatSync(home.path("links", "mcp-link")).isSymbolicLink()];

    await cliOk(home, installArgs(), { cwd: dir });
    expect(links()).toEqual([true, true, true]);
    expect(Object.keys(readJson(settingsTarget).hooks ?? {}).sort()).toEqual([...EVENTS].sort());
    expect(Object.keys(readJson(mcpTarget).mcpServers as object)).toEqual(["switchboard"]);
    await cliOk(home, installArgs(), { cwd: dir });
    expect(links()).toEqual([true, true, true]);

    expect(await cliOk(home, ["uninstall"], { cwd: dir })).toStartWith('removed 4 hook(s), the MCP server "switchboard"');
    expect(links()).toEqual([true, true, true]);
    expect([existsSync(settingsTarget), existsSync(home.path("projects", "dangling-dotfiles")), existsSync(mcpTarget)]).toEqual([false, false, false]);
    expect(readdirSync(dir).sort()).toEqual([".claude", ".mcp.json"]);
    expect(readdirSync(home.path("links"))).toEqual(["mcp-link"]);

    // Its record lost, uninstall takes the targets that hold only our entries for the files install created, not the links.
    await cliOk(home, installArgs(), { cwd: dir });
    rmSync(tokenFileOf(settingsFile).replace(/\.token$/, ".install.json"));
    await cliOk(home, ["uninstall"], { cwd: dir });
    expect(links()).toEqual([true, true, true]);
    expect([existsSync(settingsTarget), existsSync(mcpTarget)]).toEqual([false, false]);
  });

  test("a loop of symlinks is refused before anything is written", async () => {
    const dir = project("link-loop");
    const mcpFile = join(dir, ".mcp.json");
    symlinkSync(".mcp.json", mcpFile);
    const result = await runCli(home, installArgs(), { cwd: dir });
    expect({ code: result.code, stderr: lines(result.stderr) }).toEqual({
      code: 1,
      stderr: [`switchboard: ${mcpFile}: more than 40 symlinks in a row (a loop?); not touching it`],
    });
    expect(lstatSync(mcpFile).isSymbolicLink()).toBe(true);
    expect(readdirSync(dir)).toEqual([".mcp.json"]);
  });

  test("a token file made readable to others is 0600 again once installed over", async () => {
    const dir = project("token-mode");
    await cliOk(home, installArgs(), { cwd: dir });
    const tokenFile = tokenFileOf(join(dir, ".claude", "settings.local.json"));
    chmodSync(tokenFile, 0o644);
    await cliOk(home, installArgs("--token", "sbh_install_test_token_renewed"), { cwd: dir });
    expect({ mode: statSync(tokenFile).mode & 0o777, text: readFileSync(tokenFile, "utf8") }).toEqual({ mode: 0o600, text: "sbh_install_test_token_renewed\n" });
    await cliOk(home, ["uninstall"], { cwd: dir });
  });

  test("an uninstall that cannot read a file it has to change changes nothing", async () => {
    const dir = project("broken-mcp");
    await cliOk(home, installArgs(), { cwd: dir });
    const settingsFile = join(dir, ".claude", "settings.local.json");
    const settings = readFileSync(settingsFile, "utf8");
    const tokenFile = tokenFileOf(settingsFile);
    const broken = write(join(dir, ".mcp.json"), '{ "mcpServers": ');
    const result = await runCli(home, ["uninstall"], { cwd: dir });
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/\.mcp\.json is not valid JSON.*not touching it$/)]);
    expect(readFileSync(settingsFile, "utf8")).toBe(settings);
    expect(readFileSync(join(dir, ".mcp.json"), "utf8")).toBe(broken);
    expect(existsSync(tokenFile)).toBe(true);
  });

  test("an event's hooks that are not a list, null included, are refused and change nothing", async () => {
    const dir = project("not-a-list");
    const settingsFile = join(dir, ".claude", "settings.local.json");
    for (const value of [null, "echo done", {}]) {
      const before = write(settingsFile, `${JSON.stringify({ hooks: { Stop: value } }, null, 2)}\n`);
      const result = await runCli(home, installArgs(), { cwd: dir });
      expect({ value, code: result.code, stderr: lines(result.stderr) }).toEqual({
        value,
        code: 1,
        stderr: [`switchboard: ${settingsFile}: "hooks.Stop" is not a list; not touching it`],
      });
      expect(readFileSync(settingsFile, "utf8")).toBe(before);
      expect(readdirSync(dir)).toEqual([".claude"]);
    }
  });

  test("mcpServers or hooks that are not an object, null included, are refused and change nothing", async () => {
    const dir = project("not-an-object");
    const files = { mcpServers: join(dir, ".mcp.json"), hooks: join(dir, ".claude", "settings.local.json") };
    for (const [key, file] of Object.entries(files)) {
      for (const value of [null, [], "x"]) {
        const before = write(file, `${JSON.stringify({ [key]: value, other: 1 }, null, 2)}\n`);
        const result = await runCli(home, installArgs(), { cwd: dir });
        expect({ key, value, code: result.code, stderr: lines(result.stderr) }).toEqual({
          key,
          value,
          code: 1,
          stderr: [`switchboard: ${file}: "${key}" is not an object; not touching it`],
        });
        expect(readFileSync(file, "utf8")).toBe(before);
        rmSync(file);
      }
    }
    expect(readdirSync(dir)).toEqual([".claude"]);
  });

  test("refusals change nothing: settings that are not JSON, no token, no key file", async () => {
    const dir = project("refusals");
    const hooksDir = home.path(".config", "switchboard", "hooks");
    const tokenFilesBefore = existsSync(hooksDir) ? readdirSync(hooksDir).sort() : [];
    const broken = write(join(dir, ".claude", "settings.local.json"), '{ "hooks": { oops');
    const result = await runCli(home, installArgs(), { cwd: dir });
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/settings\.local\.json is not valid JSON.*not touching it$/)]);
    expect(readFileSync(join(dir, ".claude", "settings.local.json"), "utf8")).toBe(broken);

    const noToken = await runCli(home, ["install", "--mesh", "demo", "--key", keyFile], { cwd: dir });
    expect(noToken.code).toBe(2);
    const noKey = await runCli(home, ["install", "--mesh", "demo", "--key", home.path("missing.json"), "--token", TOKEN], { cwd: dir });
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toContain("no key file");
    expect(readdirSync(dir)).toEqual([".claude"]);
    expect(existsSync(hooksDir) ? readdirSync(hooksDir).sort() : []).toEqual(tokenFilesBefore);
  });
});

test("user scope: ~/.claude.json and ~/.claude/settings.json, other keys kept; uninstall restores both byte for byte", async () => {
  const userHome = new CliHome();
  try {
    const claudeJson = userHome.path(".claude.json");
    const original = write(
      claudeJson,
      `${JSON.stringify({ numStartups: 12, projects: { "/home/dev/x": { allowedTools: [] } }, mcpServers: { other: { type: "http", url: "https://example.test/mcp" } } }, null, 2)}\n`,
    );
    const userSettings = write(userHome.path(".claude", "settings.json"), `${JSON.stringify({ theme: "dark" }, null, 2)}\n`);
    const key = userHome.path("k.json");
    writeFileSync(key, JSON.stringify({ secretKey: "22".repeat(32) }), { mode: 0o600 });
    const dir = userHome.path("somewhere");
    mkdirSync(dir);
    await cliOk(userHome, ["install", "--scope", "user", "--url", URL_, "--mesh", "demo", "--key", key, "--token", TOKEN], { cwd: dir });
    const servers = (readJson(claudeJson) as { mcpServers: Record<string, unknown> }).mcpServers;
    expect(Object.keys(servers)).toEqual(["other", "switchboard"]);
    expect(readJson(claudeJson).numStartups).toBe(12);
    expect(Object.keys(readJson(userHome.path(".claude", "settings.json")).hooks ?? {}).sort()).toEqual([...EVENTS].sort());
    expect(readdirSync(dir)).toEqual([]);
    await cliOk(userHome, ["uninstall", "--scope", "user"], { cwd: dir });
    expect(readFileSync(claudeJson, "utf8")).toBe(original);
    expect(readFileSync(userHome.path(".claude", "settings.json"), "utf8")).toBe(userSettings);
  } finally {
    userHome.dispose();
  }
});

test("user scope with CLAUDE_CONFIG_DIR: the files Claude Code reads there, not ~/.claude.json and ~/.claude/settings.json", async () => {
  const userHome = new CliHome();
  try {
    const configDir = userHome.path("claude-work");
    const claudeJson = join(configDir, ".claude.json");
    const original = write(claudeJson, `${JSON.stringify({ numStartups: 3, mcpServers: {} }, null, 2)}\n`);
    const userSettings = write(join(configDir, "settings.json"), `${JSON.stringify({ theme: "dark" }, null, 2)}\n`);
    const key = userHome.path("k.json");
    writeFileSync(key, JSON.stringify({ secretKey: "55".repeat(32) }), { mode: 0o600 });
    const env = { CLAUDE_CONFIG_DIR: configDir };
    const printed = await cliOk(userHome, ["install", "--scope", "user", "--url", URL_, "--mesh", "demo", "--key", key, "--token", TOKEN], { env });
    expect(printed).toContain(`  hooks (UserPromptSubmit, Stop, StopFailure, Notification idle_prompt)  ${join(configDir, "settings.json")}`);
    expect(Object.keys((readJson(claudeJson) as { mcpServers: Record<string, unknown> }).mcpServers)).toEqual(["switchboard"]);
    expect(Object.keys(readJson(join(configDir, "settings.json")).hooks ?? {}).sort()).toEqual([...EVENTS].sort());
    expect([existsSync(userHome.path(".claude.json")), existsSync(userHome.path(".claude"))]).toEqual([false, false]);
    await cliOk(userHome, ["uninstall", "--scope", "user"], { env });
    expect(readFileSync(claudeJson, "utf8")).toBe(original);
    expect(readFileSync(join(configDir, "settings.json"), "utf8")).toBe(userSettings);
  } finally {
    userHome.dispose();
  }
});

test("a home reached through a symlink by one command and not the other: uninstall takes back what install created, and warns of nothing", async () => {
  const userHome = new CliHome();
  try {
    const key = userHome.path("k.json");
    writeFileSync(key, JSON.stringify({ secretKey: "66".repeat(32) }), { mode: 0o600 });
    const args = ["--url", URL_, "--mesh", "demo", "--key", key, "--token", TOKEN];
    const dir = userHome.path("work");
    mkdirSync(dir);
    const linked = userHome.path("linked-home");
    symlinkSync(userHome.dir, linked);
    const homes = { real: userHome.dir, linked };
    for (const [installHome, uninstallHome] of [["linked", "real"], ["real", "linked"]] as const) {
      const at = (home: "real" | "linked") => ({ cwd: dir, env: { HOME: homes[home] } });
      for (const scope of ["user", "project"]) {
        await cliOk(userHome, ["install", "--scope", scope, ...args], at(installHome));
        const removed = await runCli(userHome, ["uninstall", "--scope", scope], at(uninstallHome));
        expect({ installHome, scope, ...removed }).toMatchObject({ installHome, scope, code: 0, stderr: "" });
        // Bun keeps a cache of its own in the home it runs with.
        const home = readdirSync(userHome.dir).filter((name) => name !== ".bun");
        expect({ installHome, scope, home: home.sort(), project: readdirSync(dir) }).toEqual({
          installHome,
          scope,
          home: ["k.json", "linked-home", "work"],
          project: [],
        });
      }
    }
  } finally {
    userHome.dispose();
  }
});

test("user scope: uninstall without an install leaves a server named switchboard in ~/.claude.json", async () => {
  const userHome = new CliHome();
  try {
    const claudeJson = userHome.path(".claude.json");
    const theirs = write(claudeJson, `${JSON.stringify({ mcpServers: { switchboard: { command: "my-own-switchboard-thing", args: ["x"] } } }, null, 2)}\n`);
    expect(await cliOk(userHome, ["uninstall", "--scope", "user"])).toStartWith("removed 0 hook(s), no MCP server");
    expect(readFileSync(claudeJson, "utf8")).toBe(theirs);
  } finally {
    userHome.dispose();
  }
});

test("an install beside one of the other scope warns that each hook event would be posted twice", async () => {
  const userHome = new CliHome();
  try {
    const key = userHome.path("k.json");
    writeFileSync(key, JSON.stringify({ secretKey: "44".repeat(32) }), { mode: 0o600 });
    const args = ["--url", URL_, "--mesh", "demo", "--key", key, "--token", TOKEN];
    const dir = userHome.path("work");
    mkdirSync(dir);
    const alone = await runCli(userHome, ["install", ...args], { cwd: dir });
    expect(alone).toMatchObject({ code: 0, stderr: "" });
    const user = await runCli(userHome, ["install", "--scope", "user", ...args], { cwd: dir });
    expect(user.code).toBe(0);
    expect(user.stderr).toContain(`${join(dir, ".claude", "settings.local.json")} holds the hooks of a project-scope install too`);
    const project = await runCli(userHome, ["install", ...args], { cwd: dir });
    expect(project.code).toBe(0);
    expect(project.stderr).toContain(`${userHome.path(".claude", "settings.json")} holds the hooks of a user-scope install too`);
    await cliOk(userHome, ["uninstall", "--scope", "user"], { cwd: dir });
    expect(await runCli(userHome, ["install", ...args], { cwd: dir })).toMatchObject({ code: 0, stderr: "" });
  } finally {
    userHome.dispose();
  }
});

test("a project install and uninstall run from the home directory leave the user-scope hooks alone", async () => {
  const userHome = new CliHome();
  try {
    const key = userHome.path("k.json");
    writeFileSync(key, JSON.stringify({ secretKey: "33".repeat(32) }), { mode: 0o600 });
    const args = ["--url", URL_, "--mesh", "demo", "--key", key, "--token", TOKEN];
    await cliOk(userHome, ["install", "--scope", "user", ...args], { cwd: userHome.dir });
    const userSettings = userHome.path(".claude", "settings.json");
    const withHooks = readFileSync(userSettings, "utf8");
    expect(Object.keys(readJson(userSettings).hooks ?? {}).sort()).toEqual([...EVENTS].sort());
    // The project here is the home directory: its .claude/settings.json is the user's settings, not an earlier version's.
    await cliOk(userHome, ["install", ...args], { cwd: userHome.dir });
    expect(readFileSync(userSettings, "utf8")).toBe(withHooks);
    await cliOk(userHome, ["uninstall"], { cwd: userHome.dir });
    expect(readFileSync(userSettings, "utf8")).toBe(withHooks);
  } finally {
    userHome.dispose();
  }
});

describe("the installed hook command", () => {
  interface Captured {
    path: string;
    headers: Record<string, string>;
    body: unknown;
  }
  const captured: Captured[] = [];
  // What a proxy in front of a broker that is down may answer: lines, a terminal escape, and more text than a line should carry.
  const ERROR_PAGE = `<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\x1b[2J${"<p>upstream</p>\n".repeat(500)}</body>\n</html>\n`;
  let server: ReturnType<typeof Bun.serve>;
  let settingsFile: string;
  let tokenFile: string;

  beforeAll(async () => {
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const url = new URL(req.url);
        if (url.pathname === "/slow/hook/set-status") return new Promise<Response>(() => {});
        if (url.pathname === "/page/hook/set-status") return new Response(ERROR_PAGE, { status: 502, headers: { "content-type": "text/html" } });
        captured.push({ path: url.pathname, headers: Object.fromEntries(req.headers), body: await req.json() });
        return Response.json({ ok: true, presence_id: "p" });
      },
    });
    const dir = project("forward");
    await cliOk(home, ["install", "--url", server.url.href, "--mesh", "demo", "--key", keyFile, "--token", TOKEN], { cwd: dir });
    settingsFile = join(dir, ".claude", "settings.local.json");
    tokenFile = filesUnder(home.path(".config", "switchboard", "hooks")).find((f) => readFileSync(f, "utf8").includes(TOKEN))!;
  });
  afterAll(() => server?.stop(true));

  const input = (event: string, extra: Record<string, unknown> = {}) => ({
    session_id: "2b1c7f0e-claude-session",
    transcript_path: "/home/dev/.claude/projects/-home-dev-x/2b1c7f0e.jsonl",
    cwd: "/home/dev/x",
    permission_mode: "default",
    hook_event_name: event,
    ...extra,
  });

  test("sends only session_id, cwd and hook_event_name — never the prompt — with the token from its file and Claude Code's pid", async () => {
    const before = captured.length;
    const result = await runHook(installedHook(settingsFile, "UserPromptSubmit"), input("UserPromptSubmit", { prompt: "the secret plan for the release" }));
    expect(result).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(captured.slice(before)).toEqual([
      {
        path: "/hook/set-status",
        headers: expect.objectContaining({ authorization: `Bearer ${TOKEN}`, "x-switchboard-pid": String(process.pid) }),
        body: { cwd: "/home/dev/x", hook_event_name: "UserPromptSubmit", session_id: "2b1c7f0e-claude-session" },
      },
    ]);
    expect(readFileSync(tokenFile, "utf8")).toBe(`${TOKEN}\n`);
  });

  test("the idle prompt is forwarded with its type; a permission prompt (mid-turn) is not forwarded at all", async () => {
    const command = installedHook(settingsFile, "Notification");
    const before = captured.length;
    const permission = input("Notification", { message: "Claude needs your permission to use Bash", notification_type: "permission_prompt" });
    expect((await runHook(command, permission)).code).toBe(0);
    // The hook process has exited: a request it made would already have been answered and captured.
    expect(captured.length).toBe(before);
    const idle = input("Notification", { message: "Claude is waiting for your input", notification_type: "idle_prompt" });
    expect((await runHook(command, idle)).code).toBe(0);
    expect(captured.slice(before).map((c) => c.body)).toEqual([
      { cwd: "/home/dev/x", hook_event_name: "Notification", session_id: "2b1c7f0e-claude-session", notification_type: "idle_prompt" },
    ]);
  });

  test("a broker that is down, or one that never answers, neither fails nor blocks the hook past its bound", async () => {
    const command = installedHook(settingsFile, "Stop");
    const down = command.replace(`'${server.url.origin}'`, "'http://127.0.0.1:9'");
    expect(down).not.toBe(command);
    expect(await runHook(down, input("Stop"))).toEqual({ code: 0, stdout: "", stderr: "" });
    const slow = command.replace(`'${server.url.origin}'`, `'${server.url.origin}/slow'`);
    expect(await runHook(slow, input("Stop"))).toEqual({ code: 0, stdout: "", stderr: "" });
    // Run by hand, the forwarder says what happened on stderr.
    const byHand = await runCli(home, ["hook", "forward", "--url", "http://127.0.0.1:9", "--token-file", tokenFile], { stdin: JSON.stringify(input("Stop")) });
    expect(byHand.code).toBe(0);
    expect(lines(byHand.stderr)).toEqual([expect.stringMatching(/^switchboard hook: /)]);
  });

  test("an empty token file is named as such, and nothing is sent", async () => {
    const empty = home.path("empty.token");
    writeFileSync(empty, "\n", { mode: 0o600 });
    const before = captured.length;
    const byHand = await runCli(home, ["hook", "forward", "--url", server.url.origin, "--token-file", empty], { stdin: JSON.stringify(input("Stop")) });
    expect({ code: byHand.code, stderr: lines(byHand.stderr) }).toEqual({ code: 0, stderr: [`switchboard hook: skipped: the token file ${empty} is empty`] });
    expect(captured.length).toBe(before);
  });

  test("run by hand, the forwarder says what a server answered on one short line of stderr, whatever the body", async () => {
    const page = await runCli(home, ["hook", "forward", "--url", `${server.url.origin}/page`, "--token-file", tokenFile], { stdin: JSON.stringify(input("Stop")) });
    expect(page.code).toBe(0);
    expect(page.stdout).toBe("");
    expect(lines(page.stderr)).toEqual([expect.stringMatching(/^switchboard hook: 502 <html>\\n<head><title>502 Bad Gateway<\/title><\/head>\\n<body>\\u\{1b\}\[2J<p>upstream/)]);
    expect(page.stderr.length).toBeLessThan(600);
  });
});
