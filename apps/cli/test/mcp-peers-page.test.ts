// list_peers in a mesh with hundreds online: one result listing them all ran
// past what Claude Code takes from a tool (it moves a result over 50,000
// characters into a file, and refuses one over 25,000 tokens), so the list
// comes a page at a time, by name, as check_messages does.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { setupMesh, TestPeer, useTestBroker, type SetupMember } from "@switchboard/testkit";
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

beforeAll(async () => {
  const setup = await setupMesh(broker.admin, { members: ["alice", ...Array.from({ length: ONLINE }, (_, i) => nameOf(i))] });
  members = setup.members;
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

test("list_peers of hundreds online comes in pages under Claude Code's limits, by name; next_offset asks for the rest", async () => {
  const first = await session.call("list_peers");
  const firstPeers = first.data.peers as Array<{ display_name: string; pubkey: string; you: boolean }>;
  expect(first.isError).toBe(false);
  expect(JSON.stringify(first.data).length).toBeLessThanOrEqual(PAGE_CHARS + 100);
  expect(first.data).toMatchObject({ more: ONLINE + 1 - firstPeers.length, next_offset: firstPeers.length });
  expect(firstPeers.length).toBeGreaterThan(1);

  const second = await session.ok("list_peers", { offset: first.data.next_offset });
  const secondPeers = second.peers as typeof firstPeers;
  expect(second.more).toBeUndefined();
  const listed = [...firstPeers, ...secondPeers];
  expect(listed.map((p) => p.display_name)).toEqual(members.map((m) => m.displayName).sort());
  expect(listed.filter((p) => p.you).map((p) => p.pubkey)).toEqual([members[0]!.pubkey]);

  // Past the end: an empty page, not an error.
  expect(await session.ok("list_peers", { offset: ONLINE + 5 })).toEqual({ peers: [] });
});
