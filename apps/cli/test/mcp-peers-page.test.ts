// list_peers in a mesh with hundreds online: one result listing them all ran
// past what Claude Code takes from a tool (it moves a result over 50,000
// characters into a file, and refuses one over 25,000 tokens), so the list
// comes a page at a time, by name, as check_messages does.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { setupMesh, TestPeer, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { PAGE_CHARS } from "../src/mcp/inbox.ts";
import { CliHome } from "./support/cli.ts";
import { keyFileFor, startMcp, type McpSession } from "./support/mcp.ts";

const ONLINE = 200;
// Long names (at most 128 characters): two pages' worth of peers at fewer sockets.
const nameOf = (i: number) => `peer-${String(i).padStart(3, "0")}-${"x".repeat(100)}`;

const broker = useTestBroker({ MAX_CONNECTIONS_PER_MESH: String(ONLINE + 10) });
const home = new CliHome();
const peers: TestPeer[] = [];
let session: McpSession;
let members: SetupMember[];
let meshId: string;

beforeAll(async () => {
  const setup = await setupMesh(broker.admin, { members: ["alice", ...Array.from({ length: ONLINE }, (_, i) => nameOf(i))] });
  members = setup.members;
  meshId = setup.mesh.id;
  for (let i = 1; i < members.length; i += 20) {
    peers.push(...(await Promise.all(members.slice(i, i + 20).map((m) => TestPeer.connect(broker.wsUrl, { identity: m.identity, meshId: setup.mesh.id })))));
  }
  session = await startMcp(home, { url: broker.url, mesh: setup.mesh.slug, keyFile: keyFileFor(home, members[0]!.identity) });
  await session.connected();
});
afterAll(async () => {
  await session?.close();
  await Promise.all(peers.map((p) => p.close()));
  home.dispose();
});

type Listed = Array<{ display_name: string; pubkey: string; you: boolean }>;

test("list_peers of hundreds online comes in pages under Claude Code's limits, by name; next_after asks for the rest", async () => {
  const first = await session.call("list_peers");
  const firstPeers = first.data.peers as Listed;
  expect(first.isError).toBe(false);
  // Under the 50,000 characters past which Claude Code moves a result into a file: a page of about PAGE_CHARS.
  expect(first.text.length).toBeLessThan(50_000);
  expect(first.text.length).toBeGreaterThan(PAGE_CHARS * 0.9);
  const after = first.data.next_after;
  expect({ more: first.data.more, after: typeof after }).toEqual({ more: ONLINE + 1 - firstPeers.length, after: "string" });
  expect(firstPeers.length).toBeGreaterThan(1);

  // A peer listed on the first page goes away before the next: nobody after it is skipped.
  const gone = peers.find((p) => p.identity.publicKey === firstPeers[1]!.pubkey)!;
  await gone.close();
  await waitUntil(async () => ((await broker.admin.peers(meshId)).some((p) => p.pubkey === gone.identity.publicKey) ? undefined : true), 10_000, "its presence to end");

  const second = await session.ok("list_peers", { after });
  const secondPeers = second.peers as Listed;
  expect(second.more).toBeUndefined();
  const listed = [...firstPeers, ...secondPeers];
  expect(listed.map((p) => p.display_name)).toEqual(members.map((m) => m.displayName).sort());
  expect(listed.filter((p) => p.you).map((p) => p.pubkey)).toEqual([members[0]!.pubkey]);

  // After the last: an empty page. A cursor the tool did not give: invalid.
  const lastCursor = Buffer.from(JSON.stringify([listed.at(-1)!.display_name, listed.at(-1)!.pubkey])).toString("base64url");
  expect(await session.ok("list_peers", { after: lastCursor })).toEqual({ peers: [] });
  const bad = await session.call("list_peers", { after: "page 2" });
  expect({ isError: bad.isError, code: (bad.data.error as { code?: string } | undefined)?.code }).toEqual({ isError: true, code: "invalid" });
});
