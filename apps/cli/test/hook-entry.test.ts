// `hook forward` runs, and Claude Code waits for it, on every prompt and
// every turn's end of a session with the hooks installed: it loads its own
// command alone and no package — not zod, which the rest of the command
// line loads with the protocol's schemas, nor the SDK, which it loaded
// before; they were most of its time (`bun run bench hook` measures it). A
// preloaded probe lists, as the process exits, every module it loaded.
import { afterAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { CLI_ENTRY, CliHome } from "./support/cli.ts";

const home = new CliHome();
afterAll(() => home.dispose());

async function modulesLoadedBy(args: string[], stdin: string): Promise<string[]> {
  const list = home.path("loaded.txt");
  const probe = home.path("probe.ts");
  writeFileSync(
    probe,
    `import { writeFileSync } from "node:fs";\nprocess.on("exit", () => writeFileSync(${JSON.stringify(list)}, Object.keys(require.cache).join("\\n")));\n`,
  );
  const child = Bun.spawn([process.execPath, "--preload", probe, CLI_ENTRY, ...args], {
    env: home.env(),
    stdin: new Blob([stdin]),
    stdout: "ignore",
    stderr: "pipe",
  });
  const stderr = await new Response(child.stderr).text();
  expect({ code: await child.exited, stderr }).toMatchObject({ code: 0 });
  return readFileSync(list, "utf8").split("\n");
}

const fromPackages = (modules: string[]) =>
  modules.filter((m) => m.includes("/node_modules/") || m.includes("/packages/client/") || m.includes("/apps/cli/src/mcp/"));

test("hook forward loads its command and no package: not zod, which the rest of the command line loads", async () => {
  const tokenFile = home.path("hook.token");
  writeFileSync(tokenFile, "sbh_x", { mode: 0o600 });
  const input = JSON.stringify({ session_id: "s", cwd: home.dir, hook_event_name: "Stop" });
  // A broker that is not there: the forward is tried, fails, and the hook still ends 0.
  const hook = await modulesLoadedBy(["hook", "forward", "--url", "http://127.0.0.1:9", "--token-file", tokenFile], input);
  expect(hook.some((m) => m.endsWith("/apps/cli/src/hook-forward.ts"))).toBe(true);
  expect(fromPackages(hook)).toEqual([]);
  // The probe sees those packages where they are loaded: any other command loads them.
  const version = await modulesLoadedBy(["version"], "");
  expect(fromPackages(version).some((m) => m.includes("/node_modules/zod/"))).toBe(true);
});
