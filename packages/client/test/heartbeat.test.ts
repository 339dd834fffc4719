// The heartbeat (ClientOptions.heartbeatMs) against a real broker: a socket
// whose network went silent, open at both ends and passing nothing, is
// given up and replaced, and what was sent meanwhile still arrives, once; a
// quiet socket that answers its pings is kept.
import { afterEach, expect, test } from "bun:test";
import { setupMesh, startTcpProxy, TestPeer, useTestBroker, waitUntil, type SetupMember, type TcpProxy } from "@switchboard/testkit";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { collect, recordingWebSocket, testClients, type RawFrame } from "./support.ts";

const broker = useTestBroker();
const closing: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  await Promise.all(closing.splice(0).map((c) => c.close()));
});

const { connect } = testClients(() => broker.wsUrl);

test("a socket gone silent is given up (close 1006) and reconnected with its session; a message sent meanwhile arrives once", async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
  const [alice, bob] = members as [SetupMember, SetupMember];
  const proxy: TcpProxy = await startTcpProxy(Number(new URL(broker.url).port));
  closing.push(proxy);
  const a = await connect(mesh.id, alice, { url: `ws://127.0.0.1:${proxy.port}/ws`, heartbeatMs: 300 });
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
  const c = await connect(mesh.id, members[0]!, { heartbeatMs: 1000, WebSocket: recordingWebSocket([], sent) });
  const seen = collect(c);
  await waitUntil(() => sent.filter((f) => f.type === "ping").length >= 3 || undefined, 30_000, "three heartbeat pings");
  expect(seen.closes).toEqual([]);
  expect(c.connectionState).toBe("open");
});

for (const mode of ["close", "heartbeat"] as const) {
  const which = mode === "close" ? "the silent socket it closes" : "the silent socket its heartbeat gave up";
  test(`a client closed while its network is silent lets the process exit: ${which} does not hold it`, async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["dave"] });
    const proxy = await startTcpProxy(Number(new URL(broker.url).port));
    closing.push(proxy);
    const dir = mkdtempSync(join(tmpdir(), "switchboard-silent-"));
    const env = { ...process.env, BROKER_URL: `ws://127.0.0.1:${proxy.port}/ws`, MESH_ID: mesh.id, SECRET_KEY: members[0]!.identity.secretKey, MODE: mode, SIGNAL_DIR: dir };
    const child = Bun.spawn(["bun", join(import.meta.dir, "fixtures", "closed-while-silent.ts")], { env, stdout: "pipe", stderr: "inherit" });
    try {
      await waitUntil(() => existsSync(join(dir, "connected")) || child.exitCode !== null || undefined, 30_000, "the client to connect");
      proxy.freezeOpen();
      writeFileSync(join(dir, "frozen"), "");
      await waitUntil(() => child.exitCode !== null, 30_000, "the process to exit after close()");
      expect(child.exitCode).toBe(0);
      expect(await new Response(child.stdout).text()).toBe("closed\n");
    } finally {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
