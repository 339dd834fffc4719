// `switchboard listen` and a stdout that goes away or stops being read:
// `listen | head -1` ends with head, quietly; a signal ends a listener stuck
// writing a line nobody reads; either way a message is acked only once its
// line was written whole, so what was not goes to the member's next listener.
// A one-shot command whose stdout is gone ends quietly too.
import { afterAll, afterEach, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { pushesBeforeMarker, setupMesh, TestPeer, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { closeSync, constants, openSync, readSync, writeFileSync } from "node:fs";
import { CLI_ENTRY, CliHome, firstLine, spawnCli } from "./support/cli.ts";

// Messages whose line is larger than the 64 KiB a pipe holds.
const broker = useTestBroker({ MAX_MESSAGE_BYTES: "524288" });
const home = new CliHome();
const children: Subprocess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
});
afterAll(() => home.dispose());

async function meshWithListenerKey() {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
  const [alice, bob] = members as [SetupMember, SetupMember];
  const aliceKey = home.path(`${mesh.slug}-alice.json`);
  writeFileSync(aliceKey, JSON.stringify(alice.identity), { mode: 0o600 });
  const sender = await TestPeer.connect(broker.wsUrl, { identity: bob.identity, meshId: mesh.id });
  const listenArgs = ["listen", "--url", broker.url, "--mesh", mesh.slug, "--key", aliceKey];
  return { mesh, alice, bob, sender, listenArgs };
}

async function waitForPresence(mesh: string, pubkey: string): Promise<void> {
  await waitUntil(async () => (await broker.admin.peers(mesh)).some((p) => p.pubkey === pubkey), 15_000, "the listener's presence");
}

/** Exit code and stderr once the process has ended (killed after 20 s). */
async function ended(proc: Subprocess<"ignore" | "pipe", number | "pipe", "pipe">): Promise<{ code: number; stderr: string }> {
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  clearTimeout(timer);
  return { code, stderr };
}

/** A plain message (nonce "plain": the payload in the clear), as a peer without a shared key sends it. */
const plain = (text: string) => ({ nonce: "plain", ciphertext: Buffer.from(JSON.stringify(text)).toString("base64") });

/** The ids of the messages the member's next session is given: those its listener did not ack. */
async function unacked(mesh: string, member: SetupMember, sender: TestPeer): Promise<unknown[]> {
  // The listener's presence ended first: its end gives its leases back to the
  // queue in the same transaction. Connected before then, the next session
  // could get the marker ahead of what comes back.
  await waitUntil(async () => !(await broker.admin.peers(mesh)).some((p) => p.pubkey === member.pubkey) || undefined, 15_000, "the listener's presence to end");
  const next = await TestPeer.connect(broker.wsUrl, { identity: member.identity, meshId: mesh, sessionId: "next" });
  try {
    return (await pushesBeforeMarker(sender, next)).map((p) => p.messageId);
  } finally {
    await next.close();
  }
}

test("listen | head -1: once stdout is closed listen exits 0 without a word, and the line it could not write is not acked", async () => {
  const { mesh, alice, sender, listenArgs } = await meshWithListenerKey();
  try {
    const listener = spawnCli(home, listenArgs);
    children.push(listener);
    await waitForPresence(mesh.id, alice.pubkey);
    await sender.send(alice.pubkey, plain("one"));
    expect(await firstLine(listener.stdout)).toEndWith("[next] (unencrypted) one");
    // What head does once it has its line.
    await listener.stdout.cancel();
    const notWritten = (await sender.send(alice.pubkey, plain("two"))).messageId;
    expect(await ended(listener)).toEqual({ code: 0, stderr: "" });
    expect(await unacked(mesh.id, alice, sender)).toEqual([notWritten]);
  } finally {
    await sender.close();
  }
});

test("SIGTERM ends a listener stuck writing a line nobody reads; that message is not acked", async () => {
  const { mesh, alice, sender, listenArgs } = await meshWithListenerKey();
  // stdout a FIFO the test reads byte by byte, so it knows how much of the line is out.
  const fifo = home.path(`${mesh.slug}.fifo`);
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeEnd = openSync(fifo, constants.O_WRONLY);
  try {
    const listener = Bun.spawn(["bun", CLI_ENTRY, ...listenArgs], { env: home.env(), cwd: home.dir, stdin: "ignore", stdout: writeEnd, stderr: "pipe" });
    children.push(listener);
    closeSync(writeEnd);
    await waitForPresence(mesh.id, alice.pubkey);
    const stuck = (await sender.send(alice.pubkey, plain("x".repeat(300_000)))).messageId;
    // One byte of the line read: the rest, four pipes' worth, cannot all be written now.
    const byte = Buffer.alloc(1);
    await waitUntil(() => {
      try {
        return readSync(readEnd, byte) === 1;
      } catch {
        return false;
      }
    }, 15_000, "the first byte of the listener's line");
    listener.kill("SIGTERM");
    expect(await ended(listener)).toEqual({ code: 0, stderr: "" });
    expect(await unacked(mesh.id, alice, sender)).toEqual([stuck]);
  } finally {
    closeSync(readEnd);
    await sender.close();
  }
});

test("a one-shot command whose stdout is closed (`peers | head -0`) exits 0 without a word, its work done", async () => {
  const { mesh, alice, bob, sender } = await meshWithListenerKey();
  // A pipe whose reader is gone before the command writes: its first line is EPIPE.
  const fifo = home.path(`${mesh.slug}-closed.fifo`);
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeEnd = openSync(fifo, constants.O_WRONLY);
  closeSync(readEnd);
  try {
    const run = (args: string[]) =>
      ended(Bun.spawn(["bun", CLI_ENTRY, ...args, "--url", broker.url], {
        env: home.env({ SWITCHBOARD_ADMIN_TOKEN: broker.adminToken }),
        cwd: home.dir,
        stdin: "ignore",
        stdout: writeEnd,
        stderr: "pipe",
      }));
    expect(await run(["peers", mesh.slug])).toEqual({ code: 0, stderr: "" });
    const aliceKey = home.path(`${mesh.slug}-alice.json`);
    expect(await run(["send", "--mesh", mesh.slug, "--key", aliceKey, bob.pubkey, "sent all the same"])).toEqual({ code: 0, stderr: "" });
    expect((await sender.waitForPushes(1))[0]).toMatchObject({ senderPubkey: alice.pubkey });
  } finally {
    closeSync(writeEnd);
    await sender.close();
  }
});
