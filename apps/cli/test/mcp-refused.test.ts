// A hello refused for good: the server does not try again, and the tools say
// so with the refusal's code and that a restart is needed once it is mended.
// A member revoked while the server's connection was silent finds out when
// the SDK reconnects: named as the first hello's refusal is, not as a session
// the broker closed.
import { afterAll, expect, test } from "bun:test";
import { DEFAULT_HEARTBEAT_MS } from "@switchboard/client";
import { newIdentity, setupMesh, startTcpProxy, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { CliHome } from "./support/cli.ts";
import { keyFileFor, startMcp } from "./support/mcp.ts";

const broker = useTestBroker();
const home = new CliHome();
afterAll(() => home.dispose());

test("a hello refused on reconnecting (member revoked meanwhile): tools answer unauthorized, naming the refusal", async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice"] });
  const alice = members[0] as SetupMember;
  const proxy = await startTcpProxy(Number(new URL(broker.url).port));
  const session = await startMcp(home, {
    url: `http://127.0.0.1:${proxy.port}`,
    mesh: mesh.slug,
    keyFile: keyFileFor(home, alice.identity),
    args: ["--session", "revoked"],
  });
  try {
    await session.connected();
    // The broker's close 4002 never gets through: the server learns of the revocation only from its next hello.
    proxy.freezeOpen();
    await broker.admin.revokeMember(mesh.slug, alice.id);
    const within = 2 * DEFAULT_HEARTBEAT_MS + 20_000;
    const gone = await session.logs.wait((l) => l.msg === "mcp disconnected" && l.reconnecting === false, within, "the final disconnect");
    expect(gone).toMatchObject({ reason: "unauthorized" });
    // The attempt itself is in the log with its reason, before the end it led to.
    expect(session.logs.items.find((l) => l.msg === "mcp reconnect failed" && l.retrying === false)).toMatchObject({ code: "unauthorized" });
    const result = await session.call("list_peers");
    expect(result.isError).toBe(true);
    expect(result.data).toEqual({ error: { code: "unauthorized", message: expect.stringContaining("refused this member") } });
  } finally {
    await session.close();
    await proxy.close();
  }
});

test("a first hello refused (a key not in the mesh): tools answer unauthorized, and say to restart the server once that is mended", async () => {
  const { mesh } = await setupMesh(broker.admin, { members: ["alice"] });
  const stranger = await newIdentity();
  const session = await startMcp(home, {
    url: broker.url,
    mesh: mesh.slug,
    keyFile: keyFileFor(home, stranger, "stranger.json"),
    args: ["--session", "stranger"],
  });
  try {
    await session.logs.wait((l) => l.msg === "mcp hello refused", 10_000, "the refused hello");
    const result = await session.call("send_message", { to: "alice", text: "hello" });
    expect(result.isError).toBe(true);
    expect(result.text).toStartWith("unauthorized: the broker refused this member: ");
    expect(result.text).toContain("restart the server (/mcp in Claude Code, or a new session) once that is mended");
  } finally {
    await session.close();
  }
});
