// A session the broker ended for good (another server took its session id
// over, or its member was revoked): the tools say what happened and what to
// do about it, not only the close code, since the server does not reconnect.
import { afterAll, expect, test } from "bun:test";
import { setupMesh, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { CliHome } from "./support/cli.ts";
import { keyFileFor, startMcp, type McpSession } from "./support/mcp.ts";

const broker = useTestBroker();
const home = new CliHome();
const sessions: McpSession[] = [];
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close().catch(() => {})));
  home.dispose();
});

async function serve(keyFile: string, mesh: string, sessionId: string): Promise<McpSession> {
  const session = await startMcp(home, { url: broker.url, mesh, keyFile, args: ["--session", sessionId] });
  sessions.push(session);
  await session.connected();
  return session;
}

async function member(name: string): Promise<{ mesh: string; member: SetupMember; keyFile: string }> {
  const { mesh, members } = await setupMesh(broker.admin, { members: [name] });
  return { mesh: mesh.slug, member: members[0]!, keyFile: keyFileFor(home, members[0]!.identity, `${mesh.slug}-${name}.json`) };
}

test("a session another server took over (same session id) says so, which id, and that this server does not reconnect", async () => {
  const { mesh, keyFile } = await member("alice");
  const first = await serve(keyFile, mesh, "resumed-twice");
  await serve(keyFile, mesh, "resumed-twice");
  await first.logs.wait((l) => l.msg === "mcp disconnected" && l.reconnecting === false, 15_000, "the first server's final disconnect");
  const result = await first.call("send_message", { to: "alice", text: "still here?" });
  expect(result.isError).toBe(true);
  const error = (result.data as { error: { code: string; message: string } }).error;
  expect(error.code).toBe("replaced");
  expect(error.message).toContain('"resumed-twice"');
  expect(error.message).toContain("does not reconnect");
  expect(error.message).toContain("/mcp");
  // check_messages names the same cause beside its (empty) list.
  expect((await first.ok("check_messages")).connection).toEqual(error);
});

test("a session whose member was revoked says so and when a restart helps", async () => {
  const { mesh, member: alice, keyFile } = await member("alice");
  const session = await serve(keyFile, mesh, "revoked-live");
  await broker.admin.revokeMember(mesh, alice.id);
  await session.logs.wait((l) => l.msg === "mcp disconnected" && l.reconnecting === false, 15_000, "the final disconnect");
  const result = await session.call("list_peers");
  expect(result.isError).toBe(true);
  const error = (result.data as { error: { code: string; message: string } }).error;
  expect(error.code).toBe("revoked");
  expect(error.message).toContain("revoked from the mesh");
  expect(error.message).toContain("/mcp");
});
