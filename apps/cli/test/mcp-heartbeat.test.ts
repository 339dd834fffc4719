// A connection that goes silent — the network between the MCP server and the
// broker stops passing bytes and nothing ever closes the socket, as a NAT that
// forgot it or a laptop that slept leaves it — must not leave the session
// deaf: messages sent meanwhile reach it all the same, once.
import { afterAll, expect, test } from "bun:test";
import { setupMesh, TestPeer, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { HEARTBEAT_MS } from "../src/mcp/link.ts";
import { REQUEST_TIMEOUT_MS } from "../src/errors.ts";
import { CLI_ENTRY, CliHome } from "./support/cli.ts";
import { McpSession } from "./support/mcp.ts";

const broker = useTestBroker();
const home = new CliHome();
afterAll(() => home.dispose());

/** A TCP proxy whose connections open so far can be frozen: open on both ends, passing nothing either way. */
async function freezableProxy(targetPort: number): Promise<{ port: number; freeze(): void; close(): void }> {
  const frozen = new Set<Socket>();
  const open: Array<[Socket, Socket]> = [];
  const server: Server = createServer((down) => {
    const up = connect(targetPort, "127.0.0.1");
    open.push([down, up]);
    const live = () => !frozen.has(down);
    down.on("data", (chunk) => live() && up.write(chunk));
    up.on("data", (chunk) => live() && down.write(chunk));
    down.on("close", () => live() && up.destroy());
    up.on("close", () => live() && down.destroy());
    down.on("error", () => {});
    up.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    freeze: () => {
      for (const [down] of open) frozen.add(down);
    },
    close: () => {
      for (const pair of open) for (const socket of pair) socket.destroy();
      server.close();
    },
  };
}

test("a connection gone silent is found out by the heartbeat and replaced: a message sent meanwhile is notified, once", async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
  const [alice, bob] = members as [SetupMember, SetupMember];
  const keyFile = home.path("alice.json");
  writeFileSync(keyFile, JSON.stringify(alice.identity), { mode: 0o600 });
  const proxy = await freezableProxy(Number(new URL(broker.url).port));
  const url = `http://127.0.0.1:${proxy.port}`;
  const session = await McpSession.start(
    { command: "bun", args: [CLI_ENTRY, "mcp", "--url", url, "--mesh", mesh.slug, "--key", keyFile, "--session", "silent"] },
    { cwd: home.dir, env: home.env() },
  );
  const sender = await TestPeer.connect(broker.wsUrl, { identity: bob.identity, meshId: mesh.id });
  try {
    await session.connected();
    proxy.freeze();
    const ack = await sender.send(alice.pubkey, { nonce: "plain", ciphertext: Buffer.from(JSON.stringify("while silent")).toString("base64") });
    // One heartbeat finds the ping unanswered, then the link connects anew.
    const within = HEARTBEAT_MS + REQUEST_TIMEOUT_MS + 20_000;
    const note = await session.note((n) => n.meta.message_id === ack.messageId, "the message sent while the connection was silent", within);
    expect(note.content).toStartWith("while silent");
    expect(session.logs.items.some((l) => l.msg === "mcp connection silent; connecting anew")).toBe(true);
    // Tools work on the new connection, and the message was notified once and listed once.
    const peers = await session.ok("list_peers");
    expect(peers.peers).toContainEqual(expect.objectContaining({ display_name: "bob" }));
    expect(session.notes.items.filter((n) => n.meta.message_id === ack.messageId)).toHaveLength(1);
    const { messages } = await session.ok("check_messages");
    expect((messages as Array<{ message_id: string }>).map((m) => m.message_id)).toEqual([String(ack.messageId)]);
  } finally {
    await sender.close();
    await session.close();
    proxy.close();
  }
});
