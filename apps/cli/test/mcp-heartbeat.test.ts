// A connection that goes silent — the network between the MCP server and the
// broker stops passing bytes and nothing ever closes the socket, as a NAT that
// forgot it or a laptop that slept leaves it — must not leave the session
// deaf: messages sent meanwhile reach it all the same, once.
import { afterAll, expect, test } from "bun:test";
import { DEFAULT_HEARTBEAT_MS } from "@switchboard/client";
import { setupMesh, startTcpProxy, TestPeer, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { CliHome } from "./support/cli.ts";
import { keyFileFor, startMcp } from "./support/mcp.ts";

const broker = useTestBroker();
const home = new CliHome();
afterAll(() => home.dispose());

test("a connection gone silent is found out by the SDK's heartbeat and given up: a message sent meanwhile is notified, once", async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
  const [alice, bob] = members as [SetupMember, SetupMember];
  const proxy = await startTcpProxy(Number(new URL(broker.url).port));
  const url = `http://127.0.0.1:${proxy.port}`;
  const session = await startMcp(home, { url, mesh: mesh.slug, keyFile: keyFileFor(home, alice.identity), args: ["--session", "silent"] });
  const sender = await TestPeer.connect(broker.wsUrl, { identity: bob.identity, meshId: mesh.id });
  try {
    await session.connected();
    proxy.freezeOpen();
    const ack = await sender.send(alice.pubkey, { nonce: "plain", ciphertext: Buffer.from(JSON.stringify("while silent")).toString("base64") });
    // Quiet for a heartbeat, then a ping unanswered for as long: the socket is given up, and the SDK reconnects.
    const within = 2 * DEFAULT_HEARTBEAT_MS + 20_000;
    const note = await session.note((n) => n.meta.message_id === ack.messageId, "the message sent while the connection was silent", within);
    expect(note.content).toStartWith("while silent");
    expect(session.logs.items.find((l) => l.msg === "mcp disconnected")).toMatchObject({ code: 1006, reconnecting: true });
    // Tools work on the new connection, and the message was notified once and listed once.
    const peers = await session.ok("list_peers");
    expect(peers.peers).toContainEqual(expect.objectContaining({ display_name: "bob" }));
    expect(session.notes.items.filter((n) => n.meta.message_id === ack.messageId)).toHaveLength(1);
    const { messages } = await session.ok("check_messages");
    expect((messages as Array<{ message_id: string }>).map((m) => m.message_id)).toEqual([String(ack.messageId)]);
  } finally {
    await sender.close();
    await session.close();
    await proxy.close();
  }
});
