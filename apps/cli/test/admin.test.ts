// keygen, the admin commands, configuration precedence and usage errors of
// the switchboard CLI, run as a child process against a real broker.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { IssuedToken, MemberView, MeshView, TokenView } from "@switchboard/protocol";
import { randomSlug, useTestBroker } from "@switchboard/testkit";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CliHome, cliOk, lines, runCli } from "./support/cli.ts";

const HEX64 = /^[0-9a-f]{64}$/;

const broker = useTestBroker();
let home: CliHome;
let env: Record<string, string>;

beforeAll(() => {
  home = new CliHome();
  env = { SWITCHBOARD_URL: broker.url, SWITCHBOARD_ADMIN_TOKEN: broker.adminToken };
});
afterAll(() => home?.dispose());

const cli = (args: string[], extraEnv: Record<string, string> = {}) => runCli(home, args, { env: { ...env, ...extraEnv } });
const ok = (args: string[], extraEnv: Record<string, string> = {}) => cliOk(home, args, { env: { ...env, ...extraEnv } });

/** A failure: exactly one line on stderr, "switchboard: …", and nothing on stdout. */
function expectOneLineError(result: { code: number; stdout: string; stderr: string }, code: number, pattern: RegExp) {
  expect(result.code).toBe(code);
  expect(result.stdout).toBe("");
  expect(lines(result.stderr)).toHaveLength(1);
  expect(result.stderr).toMatch(/^switchboard: /);
  expect(result.stderr).toMatch(pattern);
}

describe("keygen", () => {
  test("writes a 0600 key file with a matching public key, prints the key, refuses to overwrite", async () => {
    const file = home.path("keys", "a.json");
    const out = await ok(["keygen", "--out", file]);
    const publicKey = out.trim();
    expect(publicKey).toMatch(HEX64);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const key = JSON.parse(readFileSync(file, "utf8")) as { secretKey: string; publicKey: string };
    expect(key.publicKey).toBe(publicKey);
    expect(key.secretKey).toMatch(HEX64);
    const { publicKeyOf } = await import("@switchboard/protocol");
    expect(await publicKeyOf(key.secretKey)).toBe(publicKey);

    expectOneLineError(await cli(["keygen", "--out", file]), 1, /already exists.*--force/);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual(key);

    const replaced = (await ok(["keygen", "--out", file, "--force"])).trim();
    expect(replaced).toMatch(HEX64);
    expect(replaced).not.toBe(publicKey);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  test("--force where the file cannot go fails in one line and leaves no copy of the secret key beside it", async () => {
    const dir = home.path("keys-blocked");
    // A directory where the key file should go: the rename onto it fails.
    mkdirSync(join(dir, "key.json"), { recursive: true });
    const result = await cli(["keygen", "--out", join(dir, "key.json"), "--force"]);
    expect(readdirSync(dir)).toEqual(["key.json"]);
    expectOneLineError(result, 1, /cannot write key file .*key\.json: /);
  });

  test("defaults to ~/.config/switchboard/key.json, and --json says where", async () => {
    const own = new CliHome();
    try {
      const result = await runCli(own, ["keygen", "--json"]);
      expect(result.code).toBe(0);
      const answer = JSON.parse(result.stdout) as { publicKey: string; keyFile: string };
      expect(answer.keyFile).toBe(own.path(".config", "switchboard", "key.json"));
      expect(statSync(answer.keyFile).mode & 0o777).toBe(0o600);
      expect(JSON.parse(readFileSync(answer.keyFile, "utf8")).publicKey).toBe(answer.publicKey);
    } finally {
      own.dispose();
    }
  });
});

describe("admin commands", () => {
  test("mesh create / list, member add / list / revoke, token create, peers", async () => {
    const slug = randomSlug();
    expect(await ok(["mesh", "create", slug, "--name", "Demo mesh"])).toMatch(new RegExp(`^created mesh ${slug} \\(`));
    expectOneLineError(await cli(["mesh", "create", slug]), 1, /taken.*\(conflict\)/);

    const meshes = JSON.parse(await ok(["mesh", "list", "--json"])) as MeshView[];
    expect(meshes.find((m) => m.slug === slug)).toMatchObject({ slug, name: "Demo mesh" });
    const table = lines(await ok(["mesh", "list"]));
    expect(table[0]).toMatch(/^SLUG\s+NAME\s+ID$/);
    const row = table.find((l) => l.startsWith(`${slug} `));
    expect(row).toMatch(new RegExp(`^${slug}\\s+Demo mesh\\s+[0-9a-f-]{36}$`));
    // Aligned: every row's NAME column starts where the header's does.
    expect(row?.indexOf("Demo mesh")).toBe(table[0]?.indexOf("NAME"));

    const alice = (await ok(["keygen", "--out", home.path(`${slug}-alice.json`)])).trim();
    const bob = (await ok(["keygen", "--out", home.path(`${slug}-bob.json`)])).trim();
    const added = JSON.parse(
      await ok(["member", "add", slug, alice, "--name", "alice", "--tag", "dev", "--tag", "ops", "--json"]),
    ) as MemberView;
    expect(added).toMatchObject({ pubkey: alice, displayName: "alice" });
    expect(await ok(["member", "add", slug, bob, "--name", "bob", "--role", "observer"])).toMatch(/^added bob \(/);

    const members = JSON.parse(await ok(["member", "list", slug, "--json"])) as MemberView[];
    expect(members.map((m) => [m.displayName, m.role, m.tags, m.revokedAt])).toEqual([
      ["alice", "member", ["dev", "ops"], null],
      ["bob", "observer", [], null],
    ]);
    const memberTable = lines(await ok(["member", "list", slug]));
    expect(memberTable[0]).toMatch(/^NAME\s+ROLE\s+TAGS\s+STATE\s+PUBKEY\s+ID$/);
    expect(memberTable[1]).toMatch(new RegExp(`^alice\\s+member\\s+dev,ops\\s+active\\s+${alice}\\s+${added.id}$`));

    // A hook token, printed alone, that the hook route accepts.
    const token = (await ok(["token", "create", slug, "alice"])).trim();
    expect(lines(token)).toHaveLength(1);
    const hook = await fetch(`${broker.url}/hook/set-status`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ cwd: "/nowhere", status: "working" }),
    });
    expect(hook.status).toBe(200);

    // Revoke by display name; the token dies with the member.
    expect(await ok(["member", "revoke", slug, "bob"])).toMatch(/^revoked [0-9a-f-]{36} at /);
    const after = JSON.parse(await ok(["member", "list", slug, "--json"])) as MemberView[];
    expect(after.find((m) => m.displayName === "bob")?.revokedAt).toEqual(expect.any(String));
    expectOneLineError(await cli(["token", "create", slug, bob]), 1, /revoked/);

    expect(JSON.parse(await ok(["peers", slug, "--json"]))).toEqual([]);
    expect(lines(await ok(["peers", slug]))).toEqual([expect.stringMatching(/^NAME\s+KEY\s+SESSION\s+STATUS\s+SOURCE\s+PID\s+CWD\s+CONNECTED$/)]);
  });

  test("a member named by its pubkey in capitals is that member, as send takes it: token create, webhook get and member revoke find it", async () => {
    const slug = randomSlug();
    await ok(["mesh", "create", slug]);
    const key = (await ok(["keygen", "--out", home.path(`${slug}-dave.json`)])).trim();
    const member = JSON.parse(await ok(["member", "add", slug, key, "--name", "dave", "--json"])) as MemberView;
    const shouted = key.toUpperCase();
    expect(JSON.parse(await ok(["token", "create", slug, shouted, "--json"]))).toMatchObject({ kind: "hook" });
    expectOneLineError(await cli(["webhook", "get", slug, shouted]), 1, new RegExp(`member ${key} has no webhook`));
    const revoked = JSON.parse(await ok(["member", "revoke", slug, shouted, "--json"])) as { id: string };
    expect(revoked.id).toBe(member.id);
  });

  test("token create --json gives the id; token list shows no secret; token revoke ends one token, not its member", async () => {
    const slug = randomSlug();
    await ok(["mesh", "create", slug]);
    const key = (await ok(["keygen", "--out", home.path(`${slug}-carol.json`)])).trim();
    await ok(["member", "add", slug, key, "--name", "carol"]);
    const doomed = JSON.parse(await ok(["token", "create", slug, "carol", "--json"])) as IssuedToken;
    expect(doomed).toEqual({ token: expect.stringMatching(/^sbh_/), id: expect.any(String), kind: "hook", createdAt: expect.any(String), revokedAt: null });
    const kept = (await ok(["token", "create", slug, "carol", "--kind", "api"])).trim();
    const postHook = (token: string) =>
      fetch(`${broker.url}/hook/set-status`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ cwd: "/nowhere", status: "working" }),
      });
    expect((await postHook(doomed.token)).status).toBe(200);

    const listed = JSON.parse(await ok(["token", "list", slug, "carol", "--json"])) as TokenView[];
    expect(listed.map((t) => [t.kind, t.revokedAt])).toEqual([
      ["hook", null],
      ["api", null],
    ]);
    const listing = await ok(["token", "list", slug, key]);
    expect(listing).not.toContain(doomed.token);
    expect(listing).not.toContain(kept);
    expect(lines(listing)[0]).toMatch(/^ID\s+KIND\s+CREATED\s+STATE$/);
    expect(lines(listing)[1]).toMatch(new RegExp(`^${doomed.id}\\s+hook\\s+\\S+\\s+active$`));

    expect((await ok(["token", "revoke", slug, "carol", doomed.id])).trim()).toMatch(new RegExp(`^revoked hook token ${doomed.id} at \\S+$`));
    expect((await postHook(doomed.token)).status).toBe(401);
    const after = JSON.parse(await ok(["token", "list", slug, "carol", "--json"])) as TokenView[];
    expect(after.map((t) => [t.id, t.revokedAt === null])).toEqual([
      [doomed.id, false],
      [listed[1]!.id, true],
    ]);
    const members = JSON.parse(await ok(["member", "list", slug, "--json"])) as MemberView[];
    expect(members[0]?.revokedAt).toBeNull();

    expectOneLineError(await cli(["token", "revoke", slug, "carol", "sbh_not-an-id"]), 2, /<token-id> is a token's id/);
    expectOneLineError(await cli(["token", "revoke", slug, "carol", crypto.randomUUID()]), 1, /no token .* \(not_found\)/);
  });

  test("member add prints one line whatever the name holds: line breaks and escape sequences as codes", async () => {
    const slug = randomSlug();
    await ok(["mesh", "create", slug]);
    const key = (await ok(["keygen", "--out", home.path(`${slug}-forged.json`)])).trim();
    const out = await ok(["member", "add", slug, key, "--name", "eve\nadded mallory (x) to demo\u001b[2K"]);
    expect(lines(out)).toEqual([expect.stringMatching(/^added eve\\nadded mallory \(x\) to demo\\u\{1b\}\[2K \([0-9a-f-]{36}\) to /)]);
  });

  test("member add of 64 hex characters that are no ed25519 public key is a usage error, and enrols nobody", async () => {
    const slug = randomSlug();
    await ok(["mesh", "create", slug]);
    expectOneLineError(
      await cli(["member", "add", slug, `02${"00".repeat(31)}`, "--name", "nobody"]),
      2,
      /<pubkey> 02(00){31} is not an ed25519 public key \(it names no point of the curve, or one of small order\)\n$/,
    );
    expect(JSON.parse(await ok(["member", "list", slug, "--json"]))).toEqual([]);
  });

  test("an unknown mesh is one error line and exit 1", async () => {
    expectOneLineError(await cli(["member", "list", "no-such-mesh"]), 1, /no mesh no-such-mesh \(not_found\)/);
  });

  test("a wrong admin token is refused with the broker's message", async () => {
    expectOneLineError(
      await cli(["mesh", "list", "--admin-token", "wrong-token-0123456789"]),
      1,
      /admin API requires.*\(unauthorized\)/,
    );
  });

  test("a broker that is not there is one error line and exit 1", async () => {
    expectOneLineError(await cli(["mesh", "list", "--url", "http://127.0.0.1:9"]), 1, /cannot reach the broker at http:\/\/127\.0\.0\.1:9/);
  });

  test("a broker that takes the request and never answers is named so after 15 s", async () => {
    // Accepts the connection, reads the request, says nothing.
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const url = `http://127.0.0.1:${silent.port}`;
      const result = await runCli(home, ["mesh", "list", "--url", url], { env, timeoutMs: 40_000 });
      expectOneLineError(result, 1, new RegExp(`the broker at ${url} did not answer within 15 s`));
    } finally {
      silent.stop(true);
    }
  });
});

describe("configuration", () => {
  test("flags beat environment, environment beats the config file, the file beats the default", async () => {
    const slug = randomSlug();
    await broker.admin.createMesh(slug);
    const own = new CliHome();
    try {
      mkdirSync(own.path(".config", "switchboard"), { recursive: true });
      writeFileSync(own.path(".config", "switchboard", "config.json"), JSON.stringify({ url: broker.url, adminToken: broker.adminToken }));
      // Only the config file: it works.
      expect((await cliOk(own, ["mesh", "list"])).includes(slug)).toBe(true);
      // The environment overrides the file (a bad token there fails)…
      const envWins = await runCli(own, ["mesh", "list"], { env: { SWITCHBOARD_ADMIN_TOKEN: "bad-token-0123456789abc" } });
      expect(envWins.code).toBe(1);
      expect(envWins.stderr).toMatch(/unauthorized/);
      // …and a flag overrides the environment.
      const flagWins = await cliOk(own, ["mesh", "list", "--admin-token", broker.adminToken], {
        env: { SWITCHBOARD_ADMIN_TOKEN: "bad-token-0123456789abc" },
      });
      expect(flagWins.includes(slug)).toBe(true);
      // --config names another file.
      const other = own.path("other.json");
      writeFileSync(other, JSON.stringify({ url: "http://127.0.0.1:9", adminToken: broker.adminToken }));
      expect((await runCli(own, ["mesh", "list", "--config", other])).stderr).toMatch(/cannot reach the broker at http:\/\/127\.0\.0\.1:9/);
    } finally {
      own.dispose();
    }
  });

  test("without a config file the default URL is http://127.0.0.1:7900", async () => {
    const own = new CliHome();
    try {
      // install names the broker it points Claude Code at, without contacting it.
      const key = own.path("k.json");
      writeFileSync(key, JSON.stringify({ secretKey: "33".repeat(32) }));
      const project = own.path("project");
      mkdirSync(project);
      const out = await cliOk(own, ["install", "--mesh", "demo", "--key", key, "--token", "t0ken"], { cwd: project });
      expect(out).toContain("broker http://127.0.0.1:7900)");
      expect(readFileSync(join(project, ".claude", "settings.local.json"), "utf8")).toContain("'--url' 'http://127.0.0.1:7900'");
      expect(readFileSync(join(project, ".mcp.json"), "utf8")).toContain('"http://127.0.0.1:7900"');
    } finally {
      own.dispose();
    }
  });

  test("a broken config file is one error line", async () => {
    const own = new CliHome();
    try {
      const file = own.path("bad.json");
      writeFileSync(file, "{not json");
      expectOneLineError(await runCli(own, ["mesh", "list", "--config", file]), 1, /bad\.json is not valid JSON/);
    } finally {
      own.dispose();
    }
  });
});

describe("usage errors exit 2 with one line", () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /no command given/],
    [["frobnicate"], /unknown command "frobnicate"/],
    [["mesh"], /mesh needs a subcommand: create, list/],
    [["mesh", "create"], /missing <slug>/],
    [["mesh", "create", "a", "b"], /unexpected argument "b"/],
    // An empty operand or name ("$SLUG" unset) is the caller's, not for the broker to refuse by its field's name.
    [["mesh", "create", ""], /<slug> is empty/],
    [["member", "add", "demo", "a".repeat(64), "--name", ""], /--name is empty/],
    [["webhook", "set"], /missing <mesh> <member> <url>/],
    [["help", "send", "extra"], /unexpected argument "extra"/],
    // A mistyped subcommand with --help is the mistake `help mesh craete` names, not the group's help.
    [["mesh", "craete", "--help"], /unknown command "mesh craete"; try create, list/],
    [["mesh", "list", "--bogus"], /Unknown option '--bogus'/],
    // Before the command is known: the word after it is not taken for the command.
    [["--bogus", "x", "mesh", "list"], /Unknown option '--bogus'/],
    // A text that starts with "-" is read as options; the line says how to send it.
    [["send", "--mesh", "demo", "*", "-5 degrees"], /Unknown option '-5' \(to pass "-5 degrees" as an argument, put it after --\)/],
    [["send", "--mesh", "demo", "*", "--not an option"], /Unknown option '--not an option' \(to pass "--not an option" as an argument, put it after --\)/],
    [["member", "add", "demo", "not-a-key", "--name", "x"], /<pubkey> must be 64 lowercase hex/],
    [["member", "add", "demo", "a".repeat(64)], /--name N is required/],
    [["member", "add", "demo", "a".repeat(64), "--name", "x", "--role", "boss"], /--role must be one of member, observer/],
    [["listen", "--count", "0", "--mesh", "demo"], /--count must be a positive integer/],
    [["send", "--mesh", "demo", "*"], /missing <text>/],
    [["send", "--mesh", "demo", "*", ""], /<text> is empty/],
    [["send", "--mesh", "demo", "*", "hi", "--priority", "urgent"], /--priority must be one of now, next, low/],
    [["send", "--mesh", "demo", "*", "hi", "--id", ""], /--id must be 1 to 128 characters/],
    [["send", "--mesh", "demo", "*", "hi", "--id", "k".repeat(129)], /--id must be 1 to 128 characters/],
    [["status", "--mesh", "demo", "asleep"], /<status> must be one of idle, working, dnd/],
    [["hook", "install"], /--token T is required/],
    [["hook", "install", "--token", "t", "--scope", "global"], /--scope must be one of project, user/],
    [["send", "*", "hi"], /no mesh: pass --mesh M, set SWITCHBOARD_MESH or put "mesh" in /],
    [["send", "--mesh", "demo", "*", "hi", "--token", "sba_x"], /--token needs --http/],
    // An HTTP send is no presence: a session named for it would be ignored.
    [["send", "--mesh", "demo", "*", "hi", "--http", "--token", "sba_x", "--session", "s1"], /--session cannot go with --http/],
    // Nor a hello: an audience given for it would be ignored, an invalid one unnoticed.
    [["send", "--mesh", "demo", "*", "hi", "--http", "--token", "sba_x", "--audience", "broker.example/ws"], /--audience cannot go with --http/],
    // Their output is for Claude Code, not for reading: a --json there was ignored.
    [["mcp", "--mesh", "demo", "--json"], /--json is not an option of mcp: its standard output is the MCP protocol\n$/],
    [["hook", "forward", "--url", "http://127.0.0.1:9", "--token-file", "/nonexistent", "--json"], /--json is not an option of hook forward: it writes one line to stderr, for Claude Code's hook log\n$/],
    [["install", "--mesh", "demo", "--token", ""], /--token is empty/],
    // As an empty operand: a flag given "$MESH" with MESH unset is not taken for unset, nor sent on.
    [["send", "--mesh", "", "*", "hi"], /--mesh is empty/],
    [["status", "--mesh", "demo", "idle", "--key", ""], /--key is empty/],
    [["mesh", "list", "--admin-token", ""], /--admin-token is empty/],
    [["mesh", "list", "--url", ""], /--url is empty/],
    [["mesh", "list", "--config", ""], /--config is empty/],
    [["keygen", "--out", ""], /--out is empty/],
    // Routes are added to the URL's path: a query or fragment before them would swallow them.
    [["mesh", "list", "--url", "http://127.0.0.1:9/?x=1"], /broker URL "http:\/\/127\.0\.0\.1:9\/\?x=1" must have no query or fragment/],
    [["mesh", "list", "--url", "http://127.0.0.1:9#top"], /broker URL .* must have no query or fragment/],
    // It would be written into .mcp.json and the hook commands, and shown in errors and logs: refused, and not echoed.
    [["mesh", "list", "--url", "http://user:pa55w0rd@127.0.0.1:9"], /^switchboard: broker URL "http:\/\/\*\*\*:\*\*\*@127\.0\.0\.1:9\/" must have no user or password/],
    [["mesh", "list", "--url", "https://t0ken@broker.example?x=1"], /^switchboard: broker URL "https:\/\/\*\*\*@broker\.example\/\?x=\*\*\*" must have no user or password/],
    // A token from a file with CRLF line ends: no header carries it, and the broker was never asked.
    [["mesh", "list", "--admin-token", "change-me-0123456789\r"], /the admin token .* holds whitespace or a control character/],
    [["send", "--mesh", "demo", "*", "hi", "--http", "--token", "sba_x\r"], /the API token .* holds whitespace or a control character/],
    // Beyond printable ASCII: fetch refuses an emoji's header as if the broker were down; curl would send ö as two other bytes.
    [["mesh", "list", "--admin-token", "admin-token-\u{1F600}-0123456789"], /the admin token .* holds a character outside printable ASCII/],
    [["mesh", "list", "--admin-token", "admin-t\u00f6k\u00e9n-0123456789"], /the admin token .* holds a character outside printable ASCII/],
  ];
  for (const [args, pattern] of cases) {
    test(`switchboard ${args.join(" ")}`, async () => {
      // No admin token here: usage is checked before anything is asked of the broker.
      expectOneLineError(await runCli(home, args, { env: { SWITCHBOARD_URL: "http://127.0.0.1:9" } }), 2, pattern);
    });
  }

  test("install --mesh \"\" is refused and writes nothing, rather than installing a server that names no mesh", async () => {
    const key = home.path("install-empty-mesh.json");
    await cliOk(home, ["keygen", "--out", key]);
    const cwd = home.path("install-empty-mesh");
    mkdirSync(cwd);
    const result = await runCli(home, ["install", "--mesh", "", "--token", "sbh_x", "--key", key], { env: { SWITCHBOARD_URL: "http://127.0.0.1:9" }, cwd });
    expectOneLineError(result, 2, /--mesh is empty/);
    expect(readdirSync(cwd)).toEqual([]);
  });

  test("install with an API token is refused and writes nothing: the broker refuses it at /hook/set-status, on every hook", async () => {
    const key = home.path("install-api-token.json");
    await cliOk(home, ["keygen", "--out", key]);
    const cwd = home.path("install-api-token");
    mkdirSync(cwd);
    const result = await runCli(home, ["install", "--mesh", "demo", "--token", "sba_0123456789abcdef", "--key", key], { env: { SWITCHBOARD_URL: "http://127.0.0.1:9" }, cwd });
    expectOneLineError(result, 2, /--token is an API token \(sba_…\): install takes a hook token \(sbh_…\)/);
    expect(readdirSync(cwd)).toEqual([]);
  });

  test("switchboard send --mesh demo * - with nothing on standard input", async () => {
    const result = await runCli(home, ["send", "--mesh", "demo", "*", "-"], { env: { SWITCHBOARD_URL: "http://127.0.0.1:9" }, stdin: "" });
    expectOneLineError(result, 2, /nothing to send: standard input was empty/);
  });

  test("webhook set with SWITCHBOARD_WEBHOOK_SECRET empty asks for a secret, as with it unset", async () => {
    const env = { SWITCHBOARD_URL: "http://127.0.0.1:9", SWITCHBOARD_WEBHOOK_SECRET: "" };
    const result = await runCli(home, ["webhook", "set", "demo", "app", "https://app.example.com/hook"], { env });
    expectOneLineError(result, 2, /--secret S \(or env SWITCHBOARD_WEBHOOK_SECRET\) is required/);
  });

  test("a missing admin token is a usage error naming the three ways to give one", async () => {
    expectOneLineError(await runCli(home, ["mesh", "list"]), 2, /--admin-token.*SWITCHBOARD_ADMIN_TOKEN.*adminToken/);
  });

  test("help lists every command and exits 0", async () => {
    for (const args of [["help"], ["--help"]]) {
      const result = await runCli(home, args);
      expect(result.code).toBe(0);
      for (const command of ["keygen", "mesh create", "mesh list", "member add", "member revoke", "member list", "token create", "peers", "listen", "send", "status", "hook install", "hook uninstall"]) {
        expect(result.stdout).toContain(`  ${command}`);
      }
    }
    const one = await runCli(home, ["send", "--help"]);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/^usage: switchboard send --mesh M <target>/);
    // A group's commands, as `mesh --help` shows them.
    for (const args of [["help", "mesh"], ["mesh", "--help"]]) {
      const group = await runCli(home, args);
      expect({ code: group.code, usages: lines(group.stdout).filter((l) => l.startsWith("usage:")) }).toEqual({
        code: 0,
        usages: ["usage: switchboard mesh create <slug> [--name N]", "usage: switchboard mesh list"],
      });
    }
  });

  test("help help says what help takes, as every command's help does", async () => {
    const result = await runCli(home, ["help", "help"]);
    expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
      code: 0,
      stdout: "usage: switchboard help [command]\n  this text, or one command's\n",
      stderr: "",
    });
  });

  test("version and --version print the package's version; --json as an object; anything more is a usage error", async () => {
    const { version } = (await Bun.file(join(import.meta.dir, "..", "package.json")).json()) as { version: string };
    for (const args of [["version"], ["--version"]]) {
      const result = await runCli(home, args);
      expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({ code: 0, stdout: `switchboard ${version}\n`, stderr: "" });
    }
    for (const args of [["version", "--json"], ["--version", "--json"]]) {
      expect(JSON.parse((await runCli(home, args)).stdout)).toEqual({ version });
    }
    for (const args of [["version", "extra"], ["--version", "extra"]]) {
      expectOneLineError(await runCli(home, args), 2, /unexpected argument "extra"/);
    }
  });
});
