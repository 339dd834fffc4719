// The options of `switchboard mcp`. A session id the broker cannot take
// (empty, or over its 128 characters) is a usage error before the server
// starts, not a server that retries for ever with every tool answering
// `unavailable`; one that gets past the command line all the same (from the
// environment) ends the connecting at once, and every failed connect says why
// in the log. `--ack-delay-ms` takes 0 (ack at once) to 10000, as the SDK does.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { MAX_SESSION_ID_LENGTH } from "@switchboard/protocol";
import { freePort, setupMesh, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { CliHome, runCli } from "./support/cli.ts";
import { keyFileFor, startMcp, type McpSession } from "./support/mcp.ts";

const broker = useTestBroker();
const home = new CliHome();
const sessions: McpSession[] = [];
let meshSlug: string;
let keyFile: string;

beforeAll(async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["ada"] });
  meshSlug = mesh.slug;
  keyFile = keyFileFor(home, (members[0] as SetupMember).identity, "ada.json");
});
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  home.dispose();
});

async function start(url: string, extraArgs: string[], env: Record<string, string> = {}): Promise<McpSession> {
  const session = await startMcp(home, { url, mesh: meshSlug, keyFile, args: extraArgs, env });
  sessions.push(session);
  return session;
}

test("--session that is empty or longer than 128 characters is a usage error (exit 2), for mcp and the peer commands", async () => {
  for (const [session, length] of [["", 0], ["s".repeat(MAX_SESSION_ID_LENGTH + 1), MAX_SESSION_ID_LENGTH + 1]] as const) {
    for (const command of [["mcp"], ["status", "idle"]]) {
      const result = await runCli(home, [...command, "--url", broker.url, "--mesh", meshSlug, "--key", keyFile, "--session", session], { timeoutMs: 10_000 });
      expect({ command, length, ...result }).toEqual({
        command,
        length,
        code: 2,
        stdout: "",
        stderr: `switchboard: --session must be 1 to 128 characters, not ${length}\n`,
      });
    }
  }
});

test("a --session of 128 characters is the session's id on the mesh", async () => {
  const sessionId = "s".repeat(MAX_SESSION_ID_LENGTH);
  const session = await start(broker.url, ["--session", sessionId]);
  await session.connected();
  expect((await broker.admin.peers(meshSlug)).map((p) => p.sessionId)).toContain(sessionId);
});

test("a session id the SDK refuses (CLAUDE_CODE_SESSION_ID too long) ends the connecting: tools answer `invalid`, and the log says why", async () => {
  const session = await start(broker.url, [], { CLAUDE_CODE_SESSION_ID: "c".repeat(MAX_SESSION_ID_LENGTH + 1) });
  const refused = await session.logs.wait((l) => l.msg === "mcp hello refused", 10_000, "mcp hello refused log line");
  expect(refused).toMatchObject({ code: "invalid", err: { message: expect.stringContaining("sessionId: 1 to 128 characters") } });
  const sent = await session.call("send_message", { to: "ada", text: "hello" });
  expect(sent.isError).toBe(true);
  expect(sent.text).toStartWith("invalid: ");
  expect(session.logs.items.filter((l) => l.msg === "mcp connect failed")).toEqual([]);
});

test("a connect that fails and is retried logs the error it failed with", async () => {
  const session = await start(`http://127.0.0.1:${await freePort()}`, ["--session", "down"]);
  const failed = await session.logs.wait((l) => l.msg === "mcp connect failed", 10_000, "mcp connect failed log line");
  expect(failed).toMatchObject({ code: expect.any(String), attempt: 0, err: { message: expect.any(String) } });
});

test("--ack-delay-ms 0 acks at once and connects; one that is not a whole number is a usage error", async () => {
  const session = await start(broker.url, ["--session", "no-delay", "--ack-delay-ms", "0"]);
  await session.connected();
  for (const value of ["-1", "1.5", "soon"]) {
    const result = await runCli(home, ["mcp", "--url", broker.url, "--mesh", meshSlug, "--key", keyFile, `--ack-delay-ms=${value}`], { timeoutMs: 10_000 });
    expect(result).toEqual({ code: 2, stdout: "", stderr: `switchboard: --ack-delay-ms must be a whole number of 0 or more, not "${value}"\n` });
  }
});

test("--ack-delay-ms over the SDK's bound (acks held past the broker's lease) is a usage error, not a server that never connects", async () => {
  const result = await runCli(home, ["mcp", "--url", broker.url, "--mesh", meshSlug, "--key", keyFile, "--ack-delay-ms", "10001"], { timeoutMs: 10_000 });
  expect(result).toEqual({ code: 2, stdout: "", stderr: 'switchboard: --ack-delay-ms must be at most 10000 (a third of the broker\'s default lease), not "10001"\n' });
});
