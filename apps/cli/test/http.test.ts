// The CLI's side of the HTTP messaging API and webhook recipients: API
// tokens, `send --http` (with --wait), `webhook set|get|delete`, as a child
// process against a real broker and a real endpoint on loopback.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import {
  backendKind,
  failReplyHolds,
  freePort,
  PeerPool,
  randomSlug,
  setupMesh,
  useTestBroker,
  WebhookReceiver,
  type SetupMember,
} from "@switchboard/testkit";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { CliHome, cliOk, eventually, lines, runCli } from "./support/cli.ts";

const SECRET = "cli-webhook-secret-0123456789";

const broker = useTestBroker({ WEBHOOK_ALLOW_PRIVATE: "true" });
let home: CliHome;
let env: Record<string, string>;
const pool = new PeerPool();
const receivers: WebhookReceiver[] = [];

beforeAll(() => {
  home = new CliHome();
  env = { SWITCHBOARD_URL: broker.url, SWITCHBOARD_ADMIN_TOKEN: broker.adminToken };
});
afterEach(async () => {
  await pool.closeAll();
  await Promise.all(receivers.splice(0).map((r) => r.stop()));
});
afterAll(() => home?.dispose());

const cli = (args: string[], extraEnv: Record<string, string> = {}) => runCli(home, args, { env: { ...env, ...extraEnv } });
const ok = (args: string[], extraEnv: Record<string, string> = {}) => cliOk(home, args, { env: { ...env, ...extraEnv } });

/** A key file for a member, as `switchboard keygen` writes it. */
function keyFile(member: SetupMember): string {
  const path = home.path(`${member.pubkey.slice(0, 8)}.json`);
  writeFileSync(path, JSON.stringify(member.identity), { mode: 0o600 });
  return path;
}

describe("send --http", () => {
  test("token create --kind api, then a send over HTTP that waits for the reply", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { slug: randomSlug(), members: ["app", "runner"] });
    const [app, runner] = members as [SetupMember, SetupMember];
    const token = (await ok(["token", "create", mesh.slug, "app", "--kind", "api"])).trim();
    expect(token).toMatch(/^sba_/);
    expect((await ok(["token", "create", mesh.slug, "app"])).trim()).toMatch(/^sbh_/);
    expect((await cli(["token", "create", mesh.slug, "app", "--kind", "root"])).code).toBe(2);

    const runnerPeer = await pool.connect(broker.wsUrl, runner, mesh.id);
    const answering = (async () => {
      const [command] = await runnerPeer.waitForPushes(1, 30_000);
      await runnerPeer.send(app.pubkey, {
        replyTo: String(command!.messageId),
        nonce: "plain",
        ciphertext: Buffer.from(JSON.stringify("done")).toString("base64"),
      });
      return command!;
    })();
    const out = lines(await ok(["send", "--mesh", mesh.slug, "--key", keyFile(app), "--http", "--token", token, "--wait", "10", "runner", "deploy now"]));
    const command = await answering;
    expect(out).toEqual([`sent ${String(command.messageId)} to 1 recipient(s) (queued)`, `reply from ${runner.pubkey.slice(0, 8)}: done`]);
    // The key file sealed it for the runner: the broker saw only ciphertext.
    expect(String(command.nonce)).toMatch(/^x1:/);

    // Without a key file the text goes in the clear; the token may come from the environment; --json for scripts.
    const plain = JSON.parse(
      await ok(["send", "--mesh", mesh.slug, "--http", "--id", "k-1", runner.pubkey, "hello", "--json"], { SWITCHBOARD_API_TOKEN: token }),
    ) as { messageId: string; recipients: number; duplicate: boolean; idempotencyKey: string };
    expect(plain).toMatchObject({ recipients: 1, duplicate: false, idempotencyKey: "k-1" });
    const [, second] = await runnerPeer.waitForPushes(2);
    expect(second).toMatchObject({ messageId: plain.messageId, nonce: "plain" });
    const again = await ok(["send", "--mesh", mesh.slug, "--http", "--id", "k-1", runner.pubkey, "hello"], { SWITCHBOARD_API_TOKEN: token });
    expect(again.trim()).toBe(`sent ${plain.messageId} to 1 recipient(s) (queued, duplicate of an earlier send)`);
  });

  test("a key file named by the config file but missing refuses the send rather than sending in the clear", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { slug: randomSlug(), members: ["app", "runner"] });
    const [app, runner] = members as [SetupMember, SetupMember];
    const token = (await ok(["token", "create", mesh.slug, "app", "--kind", "api"])).trim();
    const runnerPeer = await pool.connect(broker.wsUrl, runner, mesh.id);
    const config = home.path("config-missing-key.json");
    const missing = home.path("moved-away.json");
    writeFileSync(config, JSON.stringify({ keyFile: missing }));

    const refused = await cli(["send", "--config", config, "--mesh", mesh.slug, "--http", "--token", token, runner.pubkey, "secret plans"]);
    expect(refused.code).toBe(1);
    expect(lines(refused.stderr)).toEqual([`switchboard: no key file at ${missing}; run \`switchboard keygen\` or pass --key FILE`]);

    // Once the file is there the same command seals the message; it is the
    // first push (a send in the clear before it would have come first).
    writeFileSync(missing, JSON.stringify(app.identity), { mode: 0o600 });
    const sent = JSON.parse(await ok(["send", "--config", config, "--mesh", mesh.slug, "--http", "--token", token, runner.pubkey, "secret plans", "--json"])) as {
      messageId: string;
    };
    const [push] = await runnerPeer.waitForPushes(1);
    expect(push).toMatchObject({ messageId: sent.messageId, nonce: expect.stringMatching(/^x1:/) });
  });

  test("the default key file (whoever ran keygen) does not seal a send over HTTP: it goes in the clear, readable by its recipient", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { slug: randomSlug(), members: ["ada", "app", "runner"] });
    const [ada, app, runner] = members as [SetupMember, SetupMember, SetupMember];
    const token = (await ok(["token", "create", mesh.slug, "app", "--kind", "api"])).trim();
    const runnerPeer = await pool.connect(broker.wsUrl, runner, mesh.id);
    // As `switchboard keygen` leaves it for ada; the token is app's.
    const defaultKey = home.path(".config", "switchboard", "key.json");
    mkdirSync(dirname(defaultKey), { recursive: true });
    writeFileSync(defaultKey, JSON.stringify(ada.identity), { mode: 0o600 });
    try {
      const sent = JSON.parse(await ok(["send", "--mesh", mesh.slug, "--http", "--token", token, runner.pubkey, "status?", "--json"])) as { messageId: string };
      const [push] = await runnerPeer.waitForPushes(1);
      expect(push).toMatchObject({ messageId: sent.messageId, senderPubkey: app.pubkey, nonce: "plain" });
    } finally {
      rmSync(defaultKey);
    }
  });

  test("a key file of another member than the token's refuses the send, and stores nothing: its recipient could not open it", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { slug: randomSlug(), members: ["app", "runner"] });
    const [app, runner] = members as [SetupMember, SetupMember];
    const token = await broker.admin.createApiToken(mesh.id, app.id);
    const refused = await cli(["send", "--mesh", mesh.slug, "--key", keyFile(runner), "--http", "--token", token, runner.pubkey, "sealed as runner"]);
    expect({ code: refused.code, stderr: lines(refused.stderr) }).toEqual({
      code: 1,
      stderr: [`switchboard: send failed: forbidden: this API token belongs to member ${app.pubkey}, not ${runner.pubkey}, whose key sealed the message`],
    });
    const sent = JSON.parse(await ok(["send", "--mesh", mesh.slug, "--key", keyFile(app), "--http", "--token", token, runner.pubkey, "sealed as app", "--json"])) as {
      messageId: string;
    };
    // Had the refused send been stored, it would be pushed first.
    const peer = await pool.connect(broker.wsUrl, runner, mesh.id);
    const [push] = await peer.waitForPushes(1);
    expect(push).toMatchObject({ messageId: sent.messageId, senderPubkey: app.pubkey });
    expect(push?.nonce).not.toBe("plain");
  });

  test("--mesh naming a mesh the token is not of refuses the send, and stores nothing; its own mesh by id sends", async () => {
    const mine = await setupMesh(broker.admin, { slug: randomSlug(), members: ["app", "runner"] });
    const other = await setupMesh(broker.admin, { slug: randomSlug(), members: 1 });
    const token = await broker.admin.createApiToken(mine.mesh.id, mine.members[0]!.id);
    const runner = mine.members[1]!;
    const refused = await cli(["send", "--mesh", other.mesh.slug, "--http", "--token", token, runner.pubkey, "meant for the other mesh"]);
    expect({ code: refused.code, stderr: lines(refused.stderr) }).toEqual({
      code: 1,
      stderr: [`switchboard: send failed: forbidden: this API token belongs to mesh ${mine.mesh.slug}, not ${other.mesh.slug}`],
    });
    const sent = JSON.parse(await ok(["send", "--mesh", mine.mesh.id, "--http", "--token", token, runner.pubkey, "meant for this one", "--json"])) as {
      messageId: string;
    };
    // Had the refused send been stored, it would be pushed first.
    const peer = await pool.connect(broker.wsUrl, runner, mine.mesh.id);
    const [push] = await peer.waitForPushes(1);
    expect(push).toMatchObject({ messageId: sent.messageId, ciphertext: Buffer.from(JSON.stringify("meant for this one")).toString("base64") });
  });

  test("usage and broker errors are one line", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { slug: randomSlug(), members: ["app", "runner"] });
    const noToken = await cli(["send", "--mesh", mesh.slug, "--http", members[1]!.pubkey, "x"]);
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/^switchboard: --http needs an API token/);
    const badToken = await cli(["send", "--mesh", mesh.slug, "--http", "--token", "sba_nope", members[1]!.pubkey, "x"]);
    expect(badToken.code).toBe(1);
    expect(lines(badToken.stderr)).toEqual([expect.stringMatching(/^switchboard: send failed: unauthorized: /)]);
    expect((await cli(["send", "--mesh", mesh.slug, "--wait", "3", members[1]!.pubkey, "x"])).code).toBe(2);
    // Out of the broker's bounds: usage errors, before anything is sent.
    for (const [flag, value, finding] of [
      ["--wait", "61", "--wait must be at most 60 seconds"],
      ["--id", "", "--id must be 1 to 64 characters"],
      ["--id", "k".repeat(65), "--id must be 1 to 64 characters"],
      ["--id", "k ✓", "--id must be 1 to 64 characters"],
    ] as const) {
      const refused = await cli(["send", "--mesh", mesh.slug, "--http", "--token", "sba_nope", flag, value, members[1]!.pubkey, "x"]);
      expect({ code: refused.code, stderr: lines(refused.stderr) }).toEqual({ code: 2, stderr: [expect.stringContaining(finding)] });
    }

    // No broker there: the send may or may not have been stored, so the line
    // names the key to send it again with.
    const down = await cli(["send", "--mesh", mesh.slug, "--http", "--token", "sba_nope", "--url", `http://127.0.0.1:${await freePort()}`, members[1]!.pubkey, "x"]);
    expect(down.code).toBe(1);
    const [line = ""] = lines(down.stderr);
    expect(line).toMatch(/^switchboard: send failed: unreachable: .* \(to send it again, add --id [0-9a-f-]{36}: it is stored at most once\)$/);
  });
});

describe("send --http --wait, a reply that cannot be read", () => {
  test("fails the command with --json too, and what the peer put in it cannot reach the terminal as control characters", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { slug: randomSlug(), members: ["app", "runner"] });
    const [app, runner] = members as [SetupMember, SetupMember];
    const token = (await ok(["token", "create", mesh.slug, "app", "--kind", "api"])).trim();
    const runnerPeer = await pool.connect(broker.wsUrl, runner, mesh.id);
    const answering = (async () => {
      for (let n = 1; n <= 2; n++) {
        const pushes = await runnerPeer.waitForPushes(n, 30_000);
        // A nonce of the peer's choosing, with a terminal escape in it; a ciphertext nobody can open.
        await runnerPeer.send(app.pubkey, { replyTo: String(pushes[n - 1]!.messageId), nonce: "\u001b[2J\u001b[Hxx", ciphertext: "AAAA" });
      }
    })();
    const json = await cli(["send", "--mesh", mesh.slug, "--key", keyFile(app), "--http", "--token", token, "--wait", "10", runner.pubkey, "one", "--json"]);
    const human = await cli(["send", "--mesh", mesh.slug, "--key", keyFile(app), "--http", "--token", token, "--wait", "10", runner.pubkey, "two"]);
    await answering;
    expect(json.code).toBe(1);
    const printed = JSON.parse(json.stdout) as { unreadableReply: { error: { code: string; message: string } } };
    expect(printed.unreadableReply.error).toEqual({ code: expect.any(String), message: expect.any(String) });
    expect(human.code).toBe(1);
    for (const stderr of [json.stderr, human.stderr]) {
      expect(stderr).toContain("could not be read");
      expect(stderr).not.toContain("\u001b");
    }
  });
});

// The broker's wait failing once the message was stored (a trigger refuses
// the hold of its replies, on a Postgres the test reaches beside the broker).
describe.skipIf(backendKind !== "postgres")("send --http --wait whose wait failed once stored (needs DATABASE_URL)", () => {
  test("fails the command naming the --id and --wait that wait for the reply, with --json too, rather than printing that none came", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { slug: randomSlug(), members: ["app", "runner"] });
    const runner = members[1] as SetupMember;
    const token = (await ok(["token", "create", mesh.slug, "app", "--kind", "api"])).trim();
    const allowHolds = await failReplyHolds(broker.backend.databaseUrl!);
    let human: Awaited<ReturnType<typeof cli>>;
    let json: Awaited<ReturnType<typeof cli>>;
    try {
      human = await cli(["send", "--mesh", mesh.slug, "--http", "--token", token, "--wait", "2", "--id", "cmd-7", runner.pubkey, "deploy"]);
      json = await cli(["send", "--mesh", mesh.slug, "--http", "--token", token, "--wait", "2", "--id", "cmd-8", runner.pubkey, "deploy", "--json"]);
    } finally {
      await allowHolds();
    }
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^sent [0-9a-f-]{36} to 1 recipient\(s\) \(queued\)\n$/);
    expect(human.stderr).toMatch(/could not wait for its reply; send it again with --id cmd-7 --wait 2 to wait for it\n$/);
    expect(human.stdout + human.stderr).not.toContain("no reply within");
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ idempotencyKey: "cmd-8", reply: null, waitFailed: true });
    expect(json.stderr).toContain("--id cmd-8 --wait 2");
  });
});

describe("webhook set | get | delete", () => {
  test("a member's messages go to its endpoint while set, and the state is shown", async () => {
    const receiver = await WebhookReceiver.start();
    receivers.push(receiver);
    const { mesh, members } = await setupMesh(broker.admin, { slug: randomSlug(), members: ["sender", "hook"] });
    const [sender, hook] = members as [SetupMember, SetupMember];
    const set = lines(await ok(["webhook", "set", mesh.slug, "hook", `${receiver.url}/in`, "--secret", SECRET]));
    expect(set[0]).toBe(`webhook set for ${hook.id}`);
    expect(set).toContain(`url           ${receiver.url}/in`);

    const peer = await pool.connect(broker.wsUrl, sender, mesh.id);
    const sent = await peer.send(hook.pubkey);
    await receiver.waitFor((reqs) => reqs.some((r) => r.body.includes(String(sent.messageId))), 15_000, "the message at the endpoint");
    const state = await eventually(async () => {
      const s = JSON.parse(await ok(["webhook", "get", mesh.slug, hook.pubkey, "--json"])) as Record<string, unknown>;
      return s.lastOutcome === "ok" ? s : undefined;
    }, "the delivery to be recorded");
    expect(state).toMatchObject({ url: `${receiver.url}/in`, queued: 0, failures: 0, lastStatus: 204, nextAttemptAt: null });
    expect(JSON.stringify(state)).not.toContain(SECRET);

    const shown = lines(await ok(["webhook", "get", mesh.slug, "hook"]));
    expect(shown).toContain("last outcome  ok (204)");
    expect(lines(await ok(["webhook", "delete", mesh.slug, "hook"]))[0]).toBe(`webhook of ${hook.id} deleted; its queue goes to its sockets`);
    const gone = await cli(["webhook", "get", mesh.slug, "hook"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/has no webhook \(not_found\)/);
    const noSecret = await cli(["webhook", "set", mesh.slug, "hook", receiver.url]);
    expect(noSecret.code).toBe(2);
  });
});
