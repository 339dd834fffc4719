// The README's "Two agents in five commands", command by command, then the
// peer commands' other promises: --json lines, clean exit on SIGTERM/SIGINT,
// one-line broker errors (a hello never answered among them), a name two
// members share, status, and a listener whose member is revoked.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import {
  backendKind,
  newIdentity,
  pushesBeforeMarker,
  setupMesh,
  sleepOnInsert,
  TestPeer,
  useTestBroker,
  type SetupMember,
} from "@switchboard/testkit";
import { mkdirSync, writeFileSync } from "node:fs";
import { CliHome, cliOk, eventually, lines, runCli, spawnCli } from "./support/cli.ts";

const HEX64 = /^[0-9a-f]{64}$/;

// The README's token, so the walkthrough runs exactly as written there.
const broker = useTestBroker({ ADMIN_TOKEN: "change-me-0123456789" });
let home: CliHome;
let env: Record<string, string>;
const children: Array<Subprocess<"pipe", "pipe", "pipe">> = [];

beforeAll(() => {
  home = new CliHome();
  env = { SWITCHBOARD_URL: broker.url, SWITCHBOARD_ADMIN_TOKEN: broker.adminToken };
});
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
});
afterAll(() => home?.dispose());

/** A background CLI process whose stdout is collected as it comes. */
function background(args: string[], extraEnv: Record<string, string> = {}) {
  const proc = spawnCli(home, args, { env: { ...env, ...extraEnv } });
  children.push(proc);
  let stdout = "";
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout) stdout += decoder.decode(chunk, { stream: true });
  })();
  const stderr = new Response(proc.stderr).text();
  return {
    proc,
    stdout: () => stdout,
    /** Exit code, all stdout and stderr once the process has ended (killed after timeoutMs). */
    async finished(timeoutMs = 20_000) {
      const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
      const code = await proc.exited;
      clearTimeout(timer);
      await reading;
      return { code, stdout, stderr: await stderr };
    },
  };
}

/** Waits until the member with this pubkey has a live presence (the listener is connected). */
async function waitForPresence(mesh: string, pubkey: string, sessionId?: string): Promise<void> {
  await eventually(async () => {
    const peers = await broker.admin.peers(mesh);
    return peers.some((p) => p.pubkey === pubkey && (sessionId === undefined || p.sessionId === sessionId)) || undefined;
  }, `a presence of ${pubkey.slice(0, 8)} in ${mesh}`, 15_000);
}

const ok = (args: string[]) => cliOk(home, args, { env });

describe("README: two agents in five commands", () => {
  test("mesh create → keygen ×2 → member add ×2 → listen → send: the listener prints the decrypted hello", async () => {
    // switchboard mesh create demo
    expect(await ok(["mesh", "create", "demo"])).toMatch(/^created mesh demo \(/);
    // ALICE=$(switchboard keygen --out alice.json); BOB=$(switchboard keygen --out bob.json)
    const alice = (await ok(["keygen", "--out", "alice.json"])).trim();
    const bob = (await ok(["keygen", "--out", "bob.json"])).trim();
    expect(alice).toMatch(HEX64);
    expect(bob).toMatch(HEX64);
    // switchboard member add demo "$ALICE" --name alice; … bob
    expect(await ok(["member", "add", "demo", alice, "--name", "alice"])).toMatch(/^added alice /);
    expect(await ok(["member", "add", "demo", bob, "--name", "bob"])).toMatch(/^added bob /);

    // Terminal 3: switchboard listen --mesh demo --key alice.json (first for one message, as JSON)
    const listener = background(["listen", "--mesh", "demo", "--key", "alice.json", "--count", "1", "--json"]);
    await waitForPresence("demo", alice);

    // Terminal 2: switchboard send --mesh demo --key bob.json "$ALICE" "hello"
    const sent = await runCli(home, ["send", "--mesh", "demo", "--key", "bob.json", alice, "hello"], { env });
    expect(sent.code).toBe(0);
    expect(sent.stderr).toBe("");
    expect(sent.stdout).toMatch(/^sent [0-9a-f-]{36} to 1 recipient\(s\) \(queued\)\n$/);

    const heard = await listener.finished();
    expect(heard.code).toBe(0);
    expect(heard.stderr).toBe("");
    const received = lines(heard.stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({
      senderPubkey: bob,
      senderName: "bob",
      targetSpec: alice,
      priority: "next",
      encrypted: true,
      payload: "hello",
    });
    // The README's listener as written, stopped with Ctrl-C (SIGINT) after bob's hello.
    const readme = background(["listen", "--mesh", "demo", "--key", "alice.json"]);
    await waitForPresence("demo", alice);
    await ok(["send", "--mesh", "demo", "--key", "bob.json", alice, "hello"]);
    await eventually(async () => (readme.stdout().includes("\n") ? true : undefined), "the listener's line", 15_000);
    readme.proc.kill("SIGINT");
    const shown = await readme.finished();
    expect(shown).toEqual({ code: 0, stdout: `bob (${bob.slice(0, 8)}) → me [next] hello\n`, stderr: "" });

    // The listeners acked: nothing is waiting for alice any more.
    const keyOf = async (file: string, publicKey: string) => ({
      secretKey: ((await Bun.file(home.path(file)).json()) as { secretKey: string }).secretKey,
      publicKey,
    });
    const again = await TestPeer.connect(broker.wsUrl, { identity: await keyOf("alice.json", alice), meshId: "demo" });
    const bobPeer = await TestPeer.connect(broker.wsUrl, { identity: await keyOf("bob.json", bob), meshId: "demo" });
    expect(await pushesBeforeMarker(bobPeer, again)).toEqual([]);
    await Promise.all([again.close(), bobPeer.close()]);
  });
});

describe("peer commands", () => {
  /** A mesh with two members whose key files are in the CLI's home. */
  async function meshWithKeys() {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const aliceKey = home.path(`${mesh.slug}-alice.json`);
    const bobKey = home.path(`${mesh.slug}-bob.json`);
    writeFileSync(aliceKey, JSON.stringify(alice.identity), { mode: 0o600 });
    writeFileSync(bobKey, JSON.stringify(bob.identity), { mode: 0o600 });
    return { mesh, alice, bob, aliceKey, bobKey };
  }

  test("listen prints one line per message (sender, target, priority, text; a broadcast, sent in the clear, marked so) and exits 0 on SIGTERM", async () => {
    const { mesh, alice, bob, aliceKey } = await meshWithKeys();
    const listener = background(["listen", "--mesh", mesh.slug, "--key", aliceKey]);
    await waitForPresence(mesh.id, alice.pubkey);
    // A peer that stays online, so its name comes from the live peer list.
    const sender = await TestPeer.connect(broker.wsUrl, { identity: bob.identity, meshId: mesh.id });
    try {
      const bobKey = home.path(`${mesh.slug}-bob.json`);
      await cliOk(home, ["send", "--mesh", mesh.slug, "--key", bobKey, alice.pubkey, "first line\nsecond line", "--priority", "now"], { env });
      await cliOk(home, ["send", "--mesh", mesh.slug, "--key", bobKey, "alice", "by name"], { env });
      await cliOk(home, ["send", "--mesh", mesh.slug, "--key", bobKey, "*", "to everyone"], { env });
      await eventually(async () => (lines(listener.stdout()).length >= 3 ? true : undefined), "three lines", 15_000);
    } finally {
      await sender.close();
    }
    // Offline, a name is found only with an admin token; without one the error says so.
    const offline = await runCli(home, ["send", "--mesh", mesh.slug, "--key", aliceKey, "bob", "to bob by name"], { env: { SWITCHBOARD_URL: broker.url } });
    expect({ code: offline.code, stderr: offline.stderr }).toEqual({
      code: 1,
      stderr: expect.stringContaining('no peer online is named "bob" (without an admin token only online peers are asked: give the member\'s pubkey, or an admin token)'),
    });
    listener.proc.kill("SIGTERM");
    const done = await listener.finished();
    expect(done.code).toBe(0);
    expect(done.stderr).toBe("");
    const short = bob.pubkey.slice(0, 8);
    expect(lines(done.stdout)).toEqual([
      `bob (${short}) → me [now] first line\\nsecond line`,
      `bob (${short}) → me [next] by name`,
      `bob (${short}) → * [next] (unencrypted) to everyone`,
    ]);
    // The presence is gone: the listener closed its socket.
    await eventually(
      async () => ((await broker.admin.peers(mesh.id)).some((p) => p.pubkey === alice.pubkey) ? undefined : true),
      "alice's presence to end",
    );
  });

  test("listen --count N acks only what it printed: the rest waits for the next listener", async () => {
    const { mesh, alice, aliceKey, bobKey } = await meshWithKeys();
    // Queued while alice is away, so the first listener is pushed all three at once.
    for (const text of ["one", "two", "three"]) await cliOk(home, ["send", "--mesh", mesh.slug, "--key", bobKey, alice.pubkey, text], { env });
    const first = await runCli(home, ["listen", "--mesh", mesh.slug, "--key", aliceKey, "--count", "1"], { env });
    expect(first.code).toBe(0);
    const second = await runCli(home, ["listen", "--mesh", mesh.slug, "--key", aliceKey, "--count", "2"], { env, timeoutMs: 20_000 });
    expect(second.code).toBe(0);
    expect([...lines(first.stdout), ...lines(second.stdout)].map((line) => line.replace(/^.* \[next\] /, ""))).toEqual(["one", "two", "three"]);
  });

  test("a one-shot send or status as the recipient leaves its queued messages for the listener", async () => {
    const { mesh, alice, aliceKey, bobKey } = await meshWithKeys();
    // Queued while alice is away: the first connection alice opens is pushed them.
    for (const text of ["one", "two"]) await cliOk(home, ["send", "--mesh", mesh.slug, "--key", bobKey, alice.pubkey, text], { env });
    await cliOk(home, ["status", "--mesh", mesh.slug, "--key", aliceKey, "working"], { env });
    await cliOk(home, ["send", "--mesh", mesh.slug, "--key", aliceKey, "bob", "hi bob"], { env });
    await cliOk(home, ["status", "--mesh", mesh.slug, "--key", aliceKey, "idle"], { env });
    const heard = await runCli(home, ["listen", "--mesh", mesh.slug, "--key", aliceKey, "--count", "2"], { env, timeoutMs: 20_000 });
    expect(heard.code).toBe(0);
    expect(lines(heard.stdout).map((line) => line.replace(/^.* \[next\] /, ""))).toEqual(["one", "two"]);
  });

  test("listen inside a Claude Code session leaves that session's own presence alone", async () => {
    const { mesh, alice, aliceKey } = await meshWithKeys();
    // Standing in for the session's MCP server: alice's presence with Claude Code's session id.
    const mcp = await TestPeer.connect(broker.wsUrl, { identity: alice.identity, meshId: mesh.id, sessionId: "claude-session-1" });
    try {
      const listener = background(["listen", "--mesh", mesh.slug, "--key", aliceKey], { CLAUDE_CODE_SESSION_ID: "claude-session-1" });
      await eventually(
        async () => ((await broker.admin.peers(mesh.id)).filter((p) => p.pubkey === alice.pubkey).length === 2 ? true : undefined),
        "the listener's own presence beside the session's",
      );
      expect(mcp.isOpen).toBe(true);
      listener.proc.kill("SIGTERM");
      expect((await listener.finished()).code).toBe(0);
    } finally {
      await mcp.close();
    }
  });

  test("listen exits 0 on SIGINT", async () => {
    const { mesh, alice, aliceKey } = await meshWithKeys();
    const listener = background(["listen", "--mesh", mesh.slug, "--key", aliceKey]);
    await waitForPresence(mesh.id, alice.pubkey);
    listener.proc.kill("SIGINT");
    const done = await listener.finished();
    expect(done).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  test("send to a name two active members share refuses, like member revoke and token create, even when only one is online", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["bob", "twin", "twin"] });
    const [bob, online, offline] = members as [SetupMember, SetupMember, SetupMember];
    const bobKey = home.path(`${mesh.slug}-bob.json`);
    writeFileSync(bobKey, JSON.stringify(bob.identity), { mode: 0o600 });
    const twin = await TestPeer.connect(broker.wsUrl, { identity: online.identity, meshId: mesh.id });
    try {
      const result = await runCli(home, ["send", "--mesh", mesh.slug, "--key", bobKey, "twin", "which one?"], { env });
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(lines(result.stderr)).toEqual([
        `switchboard: 2 active members are named "twin" in mesh ${mesh.slug}; send to one of their pubkeys: ${online.pubkey}, ${offline.pubkey}`,
      ]);
      const revoke = await runCli(home, ["member", "revoke", mesh.slug, "twin"], { env });
      expect(revoke.code).toBe(1);
      expect(lines(revoke.stderr)).toEqual([expect.stringMatching(/^switchboard: 2 active members are named "twin" in mesh /)]);
      // Nothing reached the twin that is online.
      const from = await TestPeer.connect(broker.wsUrl, { identity: bob.identity, meshId: mesh.id });
      try {
        expect(await pushesBeforeMarker(from, twin)).toEqual([]);
      } finally {
        await from.close();
      }
    } finally {
      await twin.close();
    }
  });

  test("send to a pubkey that is not a member exits 1 with one line naming unknown_target", async () => {
    const { mesh, bobKey } = await meshWithKeys();
    const stranger = await newIdentity();
    const result = await runCli(home, ["send", "--mesh", mesh.slug, "--key", bobKey, stranger.publicKey, "hello?"], { env });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/^switchboard: send failed: unknown_target/)]);
  });

  test("send to an unknown channel exits 1 with one line; send --json prints the ack; a send nobody receives says so", async () => {
    const { mesh, alice, bobKey } = await meshWithKeys();
    const result = await runCli(home, ["send", "--mesh", mesh.slug, "--key", bobKey, "#nowhere", "x"], { env });
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/^switchboard: send failed: unknown_target/)]);

    const acked = JSON.parse(
      await cliOk(home, ["send", "--mesh", mesh.slug, "--key", bobKey, alice.pubkey, "queued for later", "--id", "retry-1", "--json"], { env }),
    ) as Record<string, unknown>;
    expect(acked).toMatchObject({ id: "retry-1", queued: true, recipients: 1, duplicate: false });
    // The same id again is the same message.
    const dup = JSON.parse(
      await cliOk(home, ["send", "--mesh", mesh.slug, "--key", bobKey, alice.pubkey, "queued for later", "--id", "retry-1", "--json"], { env }),
    ) as Record<string, unknown>;
    expect(dup).toMatchObject({ messageId: acked.messageId, duplicate: true });
    // A tag nobody carries: stored, and the line says nobody receives it.
    const nobody = await cliOk(home, ["send", "--mesh", mesh.slug, "--key", bobKey, "tag:nobody-has-this", "x"], { env });
    expect(nobody).toMatch(/^sent [0-9a-f-]{36}, but no member receives it: nobody else matches the target \(queued\)\n$/);
  });

  test("a refused hello (key not enrolled) exits 1 with one line", async () => {
    const { mesh } = await meshWithKeys();
    const strangerKey = home.path(`${mesh.slug}-stranger.json`);
    await cliOk(home, ["keygen", "--out", strangerKey]);
    const result = await runCli(home, ["send", "--mesh", mesh.slug, "--key", strangerKey, "*", "hi"], { env });
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/^switchboard: cannot connect to mesh .*: unauthorized/)]);
  });

  test("a broker that never answers the hello: send gives up after 15 s, as every request does, in one line", async () => {
    const { mesh, bobKey } = await meshWithKeys();
    // A socket that opens and then says nothing.
    const mute = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req, server) => (server.upgrade(req) ? undefined : new Response("not a socket", { status: 400 })),
      websocket: { message() {} },
    });
    try {
      const result = await runCli(home, ["send", "--url", mute.url.href, "--mesh", mesh.slug, "--key", bobKey, "*", "anyone?"], { env, timeoutMs: 40_000 });
      expect(result.code).toBe(1);
      expect(lines(result.stderr)).toEqual([
        expect.stringMatching(/^switchboard: cannot connect to mesh .*: timeout: no hello answer from .* within 15000 ms$/),
      ]);
    } finally {
      await mute.stop(true);
    }
  });

  test("status sets the status of its presence and prints it", async () => {
    const { mesh, aliceKey } = await meshWithKeys();
    expect(await cliOk(home, ["status", "--mesh", mesh.slug, "--key", aliceKey, "dnd"], { env })).toBe("status dnd (source manual)\n");
    const json = JSON.parse(await cliOk(home, ["status", "--mesh", mesh.slug, "--key", aliceKey, "working", "--json"], { env }));
    expect(json).toEqual({ status: "working", statusSource: "manual" });
  });

  test("--mesh can come from the config file, and its relative keyFile is beside it wherever the command runs", async () => {
    const { mesh, alice, aliceKey } = await meshWithKeys();
    const config = home.path(`${mesh.slug}-config.json`);
    writeFileSync(config, JSON.stringify({ url: broker.url, mesh: mesh.slug, keyFile: `${mesh.slug}-bob.json` }));
    const listener = background(["listen", "--key", aliceKey, "--count", "1", "--config", config], { SWITCHBOARD_URL: "" });
    await waitForPresence(mesh.id, alice.pubkey);
    const elsewhere = home.path("elsewhere");
    mkdirSync(elsewhere);
    await cliOk(home, ["send", alice.pubkey, "via config", "--config", config], { env: { SWITCHBOARD_URL: "" }, cwd: elsewhere });
    const done = await listener.finished();
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/→ me \[next\] via config\n$/);
  });

  test.skipIf(backendKind !== "postgres")("a send the broker does not answer fails after 15 s with timeout and the id to send it again with (needs DATABASE_URL)", async () => {
    const { mesh, bobKey } = await meshWithKeys();
    // A broadcast goes in the clear: its ciphertext is known, and its insert is
    // held past the CLI's 15 s (and then commits: "may have been stored").
    const text = `held-${crypto.randomUUID()}`;
    const databaseUrl = broker.backend.databaseUrl!;
    const release = await sleepOnInsert(databaseUrl, { messageCiphertext: Buffer.from(JSON.stringify(text)).toString("base64") }, 20);
    try {
      const result = await runCli(home, ["send", "--mesh", mesh.slug, "--key", bobKey, "*", text], { env, timeoutMs: 40_000 });
      expect(result.code).toBe(1);
      expect(lines(result.stderr)).toEqual([
        expect.stringMatching(/^switchboard: send failed: timeout: .* \(to send it again, add --id [0-9a-f-]{36}: it is stored at most once\)$/),
      ]);
    } finally {
      await release();
    }
  });

  test("a listener whose member is revoked exits 1 with one line", async () => {
    const { mesh, alice, aliceKey } = await meshWithKeys();
    const listener = background(["listen", "--mesh", mesh.slug, "--key", aliceKey]);
    await waitForPresence(mesh.id, alice.pubkey);
    await broker.admin.revokeMember(mesh.id, alice.id);
    const done = await listener.finished();
    expect(done.code).toBe(1);
    expect(lines(done.stderr)).toEqual([expect.stringMatching(/^switchboard: connection closed by the broker: revoked \(4002\)$/)]);
  });

  test("a listener whose session another command takes over exits 1 with a line saying what replaced it", async () => {
    const { mesh, alice, aliceKey } = await meshWithKeys();
    const listener = background(["listen", "--mesh", mesh.slug, "--key", aliceKey, "--session", "desk"]);
    await waitForPresence(mesh.id, alice.pubkey, "desk");
    await cliOk(home, ["status", "--mesh", mesh.slug, "--key", aliceKey, "--session", "desk", "working"], { env });
    const done = await listener.finished();
    expect(done.code).toBe(1);
    expect(lines(done.stderr)).toEqual([
      "switchboard: connection closed by the broker: replaced (4000): another connection of this member took its session id (desk)",
    ]);
  });
});
