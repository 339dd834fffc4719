// The MCP server ends when Claude Code ends it, even with a notification it
// cannot finish writing (Claude Code no longer reads its stdout): it exits,
// and what it had not notified goes to the member's next session.
import { afterAll, expect, test } from "bun:test";
import { setupMesh, TestPeer, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { closeSync, constants, openSync, readSync, writeFileSync } from "node:fs";
import { CLI_ENTRY, CliHome, firstLine, spawnCli } from "./support/cli.ts";

// Messages larger than the 64 KiB a pipe holds.
const broker = useTestBroker({ MAX_MESSAGE_BYTES: "262144" });
const home = new CliHome();
afterAll(() => home.dispose());

/**
 * A FIFO for a server's stdout that the test reads only when it asks: a
 * stream of Bun's on a pipe goes on taking in what reaches it, whether or not
 * it is read, so a server writing to one may never stall.
 */
function stdoutFifo(name: string) {
  const path = home.path(name);
  expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(path, constants.O_WRONLY);
  const chunk = Buffer.alloc(65_536);
  /** What the pipe holds now ("" when nothing), or null once every writer closed it. */
  const readNow = (): string | null => {
    try {
      const n = readSync(reader, chunk);
      return n === 0 ? null : chunk.toString("utf8", 0, n);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EAGAIN") return "";
      throw error;
    }
  };
  return {
    writer,
    /** The parent's copy of the write end goes once the server has its own. */
    spawned: () => closeSync(writer),
    async firstLine(): Promise<string> {
      let text = "";
      while (!text.includes("\n")) {
        const got = readNow();
        if (got === null) break;
        text += got;
        if (got === "") await Bun.sleep(10);
      }
      return text.split("\n")[0] ?? "";
    },
    /** Reads until the server closed its stdout (it exited). */
    async toTheEnd(): Promise<void> {
      for (let got = readNow(); got !== null; got = readNow()) if (got === "") await Bun.sleep(10);
    },
    close: () => closeSync(reader),
  };
}

/** The ids of the first `count` pushes a new session of `member` gets. */
async function pushedToNextSession(member: SetupMember, meshId: string, sessionId: string, count: number): Promise<string[]> {
  const next = await TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId, sessionId });
  try {
    return (await next.waitForPushes(count, 15_000)).map((p) => String(p.messageId));
  } finally {
    await next.close();
  }
}

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
    expect(await pushedToNextSession(alice, mesh.id, "next", sent.length)).toEqual(sent);
  } finally {
    server.kill("SIGKILL");
    await server.exited;
    await reading;
    await sender.close();
  }
});

test("stdin closed with messages waiting behind the notification under way: those are not notified after the stop, and the next session gets them", async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
  const [alice, bob] = members as [SetupMember, SetupMember];
  const keyFile = home.path("alice-queued.json");
  writeFileSync(keyFile, JSON.stringify(alice.identity), { mode: 0o600 });
  // Waiting for alice before her server connects, they reach it in one burst: far more than a pipe holds.
  // The first fits in the pipe, so it is notified; the second does not, and the rest wait behind it.
  const sender = await TestPeer.connect(broker.wsUrl, { identity: bob.identity, meshId: mesh.id });
  const sent: string[] = [];
  for (let i = 0; i < 16; i++) {
    const text = `${i}${"y".repeat(i === 0 ? 100 : 120_000)}`;
    const ack = await sender.send(alice.pubkey, { nonce: "plain", ciphertext: Buffer.from(JSON.stringify(text)).toString("base64") });
    sent.push(String(ack.messageId));
  }
  const stdout = stdoutFifo("queued.stdout");
  const server = Bun.spawn(["bun", CLI_ENTRY, "mcp", "--url", broker.url, "--mesh", mesh.slug, "--key", keyFile, "--session", "queued"], {
    env: home.env(),
    cwd: home.dir,
    stdin: "pipe",
    stdout: stdout.writer,
    stderr: "pipe",
  });
  stdout.spawned();
  let stderr = "";
  const reading = (async () => {
    for await (const chunk of server.stderr) stderr += new TextDecoder().decode(chunk);
  })();
  const notified = () => stderr.split("\n").filter((line) => line.includes('"mcp notified"')).length;
  try {
    server.stdin.write(
      `${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "0" } } })}\n`,
    );
    expect(JSON.parse(await stdout.firstLine())).toMatchObject({ id: 1, result: { serverInfo: { name: "switchboard" } } });
    server.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })}\n`);
    // Nobody reads stdout: the server stalls on a write with the rest of the burst behind it.
    await waitUntil(() => notified() >= 1, 15_000, "a first notification written");
    let seen = -1;
    await waitUntil(
      async () => {
        const now = notified();
        if (now === seen) return true;
        seen = now;
        await Bun.sleep(500);
        return false;
      },
      15_000,
      "the server stalled on a write",
    );

    // Claude Code ends the server; what reaches the pipe from now on nobody shows the model.
    server.stdin.end();
    await stdout.toTheEnd();
    const exited = await Promise.race([server.exited.then(() => "exited"), Bun.sleep(10_000).then(() => "still running")]);
    expect(exited).toBe("exited");
    await reading;

    // The log is in the order things happened: after the stop, at most the notification under way was finished.
    const log = stderr.split("\n");
    const stopAt = log.findIndex((line) => line.includes('"mcp stopping"'));
    const done = (lines: string[]) => lines.filter((line) => line.includes('"mcp notified"')).length;
    const before = done(log.slice(0, stopAt));
    expect({ stopped: stopAt >= 0, before: before < sent.length - 1, after: done(log.slice(stopAt)) <= 1 }).toEqual({ stopped: true, before: true, after: true });
    const shown = before + done(log.slice(stopAt));

    // Every message behind it goes to the member's next session.
    expect(await pushedToNextSession(alice, mesh.id, "queued-next", sent.length - shown)).toEqual(sent.slice(shown));
  } finally {
    server.kill("SIGKILL");
    await server.exited;
    await reading;
    stdout.close();
    await sender.close();
  }
});
