// The MCP server ends when Claude Code ends it, even with a notification it
// cannot finish writing (Claude Code no longer reads its stdout): it exits,
// and what it had not notified goes to the member's next session.
import { afterAll, expect, test } from "bun:test";
import { setupMesh, TestPeer, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { writeFileSync } from "node:fs";
import { CliHome, firstLine, spawnCli } from "./support/cli.ts";

// Messages larger than the 64 KiB a pipe holds.
const broker = useTestBroker({ MAX_MESSAGE_BYTES: "262144" });
const home = new CliHome();
afterAll(() => home.dispose());

test("SIGTERM ends a server stuck writing a notification nobody reads; nothing it did not notify is acked", async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
  const [alice, bob] = members as [SetupMember, SetupMember];
  const keyFile = home.path("alice.json");
  writeFileSync(keyFile, JSON.stringify(alice.identity), { mode: 0o600 });
  const server = spawnCli(home, ["mcp", "--url", broker.url, "--mesh", mesh.slug, "--key", keyFile, "--session", "stuck"]);
  let stderr = "";
  const reading = (async () => {
    for await (const chunk of server.stderr) stderr += new TextDecoder().decode(chunk);
  })();
  const sender = await TestPeer.connect(broker.wsUrl, { identity: bob.identity, meshId: mesh.id });
  try {
    server.stdin.write(
      `${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "0" } } })}\n`,
    );
    expect(JSON.parse(await firstLine(server.stdout))).toMatchObject({ id: 1, result: { serverInfo: { name: "switchboard" } } });
    server.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })}\n`);
    await waitUntil(() => stderr.includes('"mcp connected"'), 10_000, "the mcp connected log line");
    expect(stderr).toContain('"mcp connected"');

    // Claude Code went away without a word: nobody reads stdout any more.
    await server.stdout.cancel();
    const text = "x".repeat(60_000);
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) {
      const ack = await sender.send(alice.pubkey, { nonce: "plain", ciphertext: Buffer.from(JSON.stringify(`${i}${text}`)).toString("base64") });
      sent.push(String(ack.messageId));
    }
    server.kill("SIGTERM");
    const exited = await Promise.race([server.exited.then(() => "exited"), Bun.sleep(10_000).then(() => "still running")]);
    expect(exited).toBe("exited");

    // The next session of the member gets every one of them: none was acked unshown.
    const next = await TestPeer.connect(broker.wsUrl, { identity: alice.identity, meshId: mesh.id, sessionId: "next" });
    try {
      const pushes = await next.waitForPushes(sent.length, 15_000);
      expect(pushes.map((p) => p.messageId)).toEqual(sent);
    } finally {
      await next.close();
    }
  } finally {
    server.kill("SIGKILL");
    await server.exited;
    await reading;
    await sender.close();
  }
});
