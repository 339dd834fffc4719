// A display name in send_message's `to` without an admin token: the live peer
// list and the names the server has seen answer for it, and a name two
// members share is ambiguous whether both are online or one has gone offline
// since it was seen (CLAUDE-CODE.md: a display name of any member, online or
// not; two members with that name → ambiguous_target).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { setupMesh, TestPeer, useTestBroker, waitUntil, type SetupMember } from "@switchboard/testkit";
import { CliHome } from "./support/cli.ts";
import { keyFileFor, startMcp, type McpSession } from "./support/mcp.ts";

const broker = useTestBroker();
const home = new CliHome();
let session: McpSession;
let meshSlug: string;
let alice: SetupMember;
let bobs: [SetupMember, SetupMember];

beforeAll(async () => {
  const setup = await setupMesh(broker.admin, { members: ["alice", "bob", "bob"] });
  meshSlug = setup.mesh.slug;
  alice = setup.members[0] as SetupMember;
  bobs = [setup.members[1] as SetupMember, setup.members[2] as SetupMember];
  // No admin token anywhere: home.env() passes none, and no config file holds one.
  session = await startMcp(home, { url: broker.url, mesh: meshSlug, keyFile: keyFileFor(home, alice.identity) });
  await session.connected();
});
afterAll(async () => {
  await session?.close();
  home.dispose();
});

const isOnline = async (pubkey: string) => (await broker.admin.peers(meshSlug)).some((p) => p.pubkey === pubkey);

test("a name shared by a member online and one seen online that has gone offline is ambiguous_target, naming both keys; nothing is sent", async () => {
  const [first, second] = await Promise.all(bobs.map((b) => TestPeer.connect(broker.wsUrl, { identity: b.identity, meshId: meshSlug, autoAck: true })));
  try {
    const both = await session.call("send_message", { to: "bob", text: "both online" });
    expect(both).toMatchObject({ isError: true, data: { error: { code: "ambiguous_target" } } });

    await second!.close();
    await waitUntil(async () => !(await isOnline(bobs[1].pubkey)), 15_000, "the second bob offline");
    expect(await isOnline(bobs[0].pubkey)).toBe(true);
    const oneOffline = await session.call("send_message", { to: "bob", text: "one offline" });
    expect(oneOffline).toMatchObject({ isError: true, data: { error: { code: "ambiguous_target" } } });
    expect(oneOffline.text).toContain(bobs[0].pubkey);
    expect(oneOffline.text).toContain(bobs[1].pubkey);
    // A marker sent after them by its key comes first: neither refused send went out.
    const marker = await session.call("send_message", { to: bobs[0].pubkey, text: "marker" });
    const [firstPush] = await first!.waitForPushes(1);
    expect(firstPush?.messageId).toBe((marker.data as { message_id: string }).message_id);
  } finally {
    await Promise.all([first?.close(), second?.close()]);
  }
});
