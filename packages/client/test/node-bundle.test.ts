// The SDK as a Node program gets it (docs/client.md, "In Node"): the bundle
// build-bundles.ts makes from src/index.ts, imported by plain JavaScript
// that the node binary runs (fixtures/node-*.mjs), against a real broker.
// Node cannot import the TypeScript source; this bundle is its way in.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { setupMesh, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildNodeBundle } from "../build-bundles.ts";
import * as sdk from "../src/index.ts";

describe("the SDK's Node bundle, run by node", () => {
  const broker = useTestBroker();
  let dir: string;
  let bundle: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "switchboard-node-bundle-"));
    ({ path: bundle } = await buildNodeBundle(join(dir, "switchboard.node.js")));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs a fixture under node (20's WebSocket behind its flag; built in from 22); its one line of output. */
  async function run(fixture: string, env: Record<string, string>): Promise<unknown> {
    const proc = Bun.spawn(["node", "--experimental-websocket", join(import.meta.dir, "fixtures", fixture)], {
      env: { PATH: process.env.PATH ?? "", BUNDLE: bundle, BROKER_URL: broker.url, ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    const errors = stderr.split("\n").filter((l) => l !== "" && !l.includes("ExperimentalWarning") && !l.includes("--trace-warnings"));
    expect({ code, errors }).toEqual({ code: 0, errors: [] });
    return JSON.parse(stdout);
  }

  test("exports what the package does", async () => {
    expect(Object.keys((await import(bundle)) as typeof sdk).sort()).toEqual(Object.keys(sdk).sort());
  });

  test("connects, sends an encrypted message and answers a request, under node", async () => {
    const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
    const [alice, bob] = members as [SetupMember, SetupMember];
    const out = await run("node-peers.mjs", { MESH: mesh.id, ALICE: alice.identity.secretKey, BOB: bob.identity.secretKey, BOB_PUBKEY: bob.pubkey });
    expect(out).toEqual({ recipients: 1, message: { payload: { text: "from node" }, encrypted: true }, reply: { answer: 42 } });
  });

  test("without a WebSocket class, connect is refused as invalid, naming the option", async () => {
    const { members } = await setupMesh(broker.admin, { members: ["alice"] });
    const out = await run("node-no-websocket.mjs", { ALICE: members[0]!.identity.secretKey });
    expect(out).toEqual({ code: "invalid", message: "no WebSocket in this runtime: pass options.WebSocket (the ws package's class, say)" });
  });
});
