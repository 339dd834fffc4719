// The heartbeat (ClientOptions.heartbeatMs) against a real broker: a socket
// whose network went silent, open at both ends and passing nothing, is
// given up and replaced, and what was sent meanwhile still arrives, once; a
// quiet socket that answers its pings is kept.
import { afterEach, expect, test } from "bun:test";
import { setupMesh, startTcpProxy, TestPeer, useTestBroker, waitUntil, type SetupMember, type TcpProxy } from "@switchboard/testkit";
import { SwitchboardClient, type ClientOptions } from "../src/index.ts";
import { collect, recordingWebSocket, type RawFrame } from "./support.ts";

const broker = useTestBroker();
const closing: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  await Promise.all(closing.splice(0).map((c) => c.close()));
});

async function client(member: SetupMember, meshId: string, options: Partial<ClientOptions>): Promise<SwitchboardClient> {
  const made = await SwitchboardClient.connect({
    url: broker.wsUrl,
    meshId,
    secretKey: member.identity.secretKey,
    reconnect: { minDelayMs: 20, maxDelayMs: 200 },
    ...options,
  });
  closing.push(made);
  return made;
}

test("a socket gone silent is given up (close 1006) and reconnected with its session; a message sent meanwhile arrives once", async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
  const [alice, bob] = members as [SetupMember, SetupMember];
  const proxy: TcpProxy = await startTcpProxy(Number(new URL(broker.url).port));
  closing.push(proxy);
  const a = await client(alice, mesh.id, { url: `ws://127.0.0.1:${proxy.port}/ws`, heartbeatMs: 300 });
  const seen = collect(a);
  const sender = await TestPeer.connect(broker.wsUrl, { identity: bob.identity, meshId: mesh.id });
  closing.push(sender);
  proxy.freezeOpen();
  const sent = await sender.send(alice.pubkey, { nonce: "plain", ciphertext: Buffer.from(JSON.stringify("while silent")).toString("base64") });
  await waitUntil(() => seen.messages.length > 0 || undefined, 30_000, "the message sent while the socket was silent");
  expect(seen.messages.map((m) => [m.messageId, m.payload])).toEqual([[sent.messageId, "while silent"]]);
  // The silent socket's close first. A busy machine may keep the new socket's
  // pong past the heartbeat too: it is given up and replaced the same way.
  const heartbeatClose = { code: 1006, reason: expect.stringContaining("nothing from the broker"), willReconnect: true };
  // Calls go out on the new socket; once one is answered, every close was followed by its reconnect.
  expect(await a.ping()).toBeGreaterThan(0);
  expect(seen.closes.length).toBeGreaterThanOrEqual(1);
  expect(seen.closes).toEqual(seen.closes.map(() => heartbeatClose));
  expect(seen.reconnects).toBe(seen.closes.length);
  // The same session: the new hello replaced the silent socket's presence.
  const presences = (await broker.admin.peers(mesh.id)).filter((p) => p.memberId === alice.id);
  expect(presences.map((p) => p.presenceId)).toEqual([a.presenceId]);
});

test("a quiet socket that answers its pings is kept", async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["carol"] });
  const sent: RawFrame[] = [];
  // Long enough that a pong is never late on a machine busy with the rest of the suite (at 100 ms one was, and the socket was given up).
  const c = await client(members[0]!, mesh.id, { heartbeatMs: 1000, WebSocket: recordingWebSocket([], sent) });
  const seen = collect(c);
  await waitUntil(() => sent.filter((f) => f.type === "ping").length >= 3 || undefined, 30_000, "three heartbeat pings");
  expect(seen.closes).toEqual([]);
  expect(c.connectionState).toBe("open");
});
