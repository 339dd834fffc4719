// `--audience`: the broker name the CLI's and the MCP server's hellos are
// signed for, when it is not the URL's host. A broker with HELLO_AUDIENCES
// reached by another name (a tunnel, a port forward) refuses a hello signed
// for the host dialled; with --audience (or SWITCHBOARD_AUDIENCE, or the
// config file's "audience") the commands get in, and `install` writes it
// into the server it registers.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { setupMesh, TestBroker, type SetupMember } from "@switchboard/testkit";
import { CliHome, cliOk, lines, runCli } from "./support/cli.ts";
import { keyFileFor, McpSession, registeredServer, startMcp } from "./support/mcp.ts";

const NAME = "switchboard.test";
const TOKEN = "sbh_audience_test_token_5a6b7c8d";

let broker: TestBroker;
const home = new CliHome();
const sessions: McpSession[] = [];
let mesh: string;
let ada: SetupMember;
let adaKey: string;
let graceKey: string;
beforeAll(async () => {
  // Its one name is not the 127.0.0.1:port the commands dial.
  broker = await TestBroker.start({ HELLO_AUDIENCES: NAME });
  const setup = await setupMesh(broker.admin, { members: ["ada", "grace"] });
  mesh = setup.mesh.slug;
  ada = setup.members[0] as SetupMember;
  adaKey = keyFileFor(home, ada.identity, "ada.json");
  graceKey = keyFileFor(home, (setup.members[1] as SetupMember).identity, "grace.json");
});
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  await broker?.dispose();
  home.dispose();
});

const peer = (key: string, ...rest: string[]) => ["--url", broker.url, "--mesh", mesh, "--key", key, ...rest];

test("a hello signed for the host dialled is refused by a broker known by another name, and the error says which", async () => {
  const result = await runCli(home, ["status", "idle", ...peer(adaKey)]);
  expect(result.code).toBe(1);
  expect(result.stdout).toBe("");
  expect(result.stderr).toContain(`signed for ${new URL(broker.url).host}, which is not one of this broker's names`);
});

test("--audience, SWITCHBOARD_AUDIENCE and the config file's audience name the broker: send and listen get through", async () => {
  expect(await cliOk(home, ["status", "working", ...peer(adaKey, "--audience", "Switchboard.TEST")])).toBe("status working (source manual)\n");
  await cliOk(home, ["send", ...peer(graceKey, ada.pubkey, "through the tunnel")], { env: { SWITCHBOARD_AUDIENCE: NAME } });
  const config = home.path("audience-config.json");
  writeFileSync(config, JSON.stringify({ audience: NAME }));
  const printed = await cliOk(home, ["listen", ...peer(adaKey, "--config", config, "--count", "1", "--json")]);
  expect(lines(printed).map((line) => (JSON.parse(line) as { payload: unknown }).payload)).toEqual(["through the tunnel"]);
});

test("an audience the broker would refuse is a usage error before any connect, for the peer commands, mcp and install", async () => {
  for (const command of [["status", "idle"], ["listen"], ["send", ada.pubkey, "x"], ["mcp"], ["install", "--token", TOKEN]]) {
    const result = await runCli(home, [...command, ...peer(graceKey, "--audience", "broker.example/ws")], { timeoutMs: 10_000 });
    expect({ command, ...result }).toEqual({
      command,
      code: 2,
      stdout: "",
      stderr: 'switchboard: audience "broker.example/ws" is not a broker name: expected a host as a URL names it, lower case (broker.example.com, 127.0.0.1:7900)\n',
    });
  }
  expect(await runCli(home, ["status", "idle", ...peer(graceKey, "--audience", "")])).toEqual({ code: 2, stdout: "", stderr: "switchboard: --audience is empty\n" });
});

test("install writes the audience into the MCP server it registers, and that server connects; one without it is refused for good", async () => {
  const dir = home.path("projects", "audience");
  mkdirSync(dir, { recursive: true });
  const printed = await cliOk(home, ["install", ...peer(adaKey, "--audience", NAME, "--token", TOKEN, "--json")], { cwd: dir });
  expect(JSON.parse(printed)).toMatchObject({ url: broker.url, audience: NAME });
  const registered = registeredServer(`${dir}/.mcp.json`);
  expect(registered.args.slice(1)).toEqual(["mcp", "--url", broker.url, "--mesh", mesh, "--audience", NAME, "--key", adaKey]);

  const installed = await McpSession.start(registered, { cwd: dir, env: home.env({ CLAUDE_CODE_SESSION_ID: "installed" }) });
  sessions.push(installed);
  await installed.connected();
  expect((await broker.admin.peers(mesh)).map((p) => p.sessionId)).toContain("installed");

  const without = await startMcp(home, { url: broker.url, mesh, keyFile: adaKey, args: ["--session", "no-audience"] });
  sessions.push(without);
  const refused = await without.logs.wait((l) => l.msg === "mcp hello refused", 10_000, "mcp hello refused log line");
  expect(refused).toMatchObject({ code: "unauthorized", err: { message: expect.stringContaining("not one of this broker's names") } });
});
