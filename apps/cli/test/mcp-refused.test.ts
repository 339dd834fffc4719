// A member revoked while the MCP server's connection was silent finds out
// when the SDK reconnects: its hello is refused for good. The tools must then
// say so with the refusal's code, as they do when the first hello is refused,
// not as a session the broker closed.
import { afterAll, expect, test } from "bun:test";
import { DEFAULT_HEARTBEAT_MS } from "@switchboard/client";
import { setupMesh, startTcpProxy, useTestBroker, type SetupMember } from "@switchboard/testkit";
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
