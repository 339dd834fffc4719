// Who a message is from, when no list names its sender (a member that sends
// over HTTP is never online): the server asks the lists once for a burst of
// its messages, not once per message, so it does not spend the member's
// control-frame rate limit on them; a later list that names the sender names
// its next messages.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { newIdentity, setupMesh, TestPeer, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { CliHome } from "./support/cli.ts";
import { keyFileFor, startMcp, type McpSession } from "./support/mcp.ts";

// Few control frames a minute (list_peers among them): a lookup per message would run out of them.
const CONTROL_PER_MIN = 5;
const BURST = 12;
const broker = useTestBroker({ CONTROL_RATE_LIMIT_PER_MIN: String(CONTROL_PER_MIN) });
const home = new CliHome();
let session: McpSession;
let meshSlug: string;
let alice: SetupMember;

beforeAll(async () => {
  const setup = await setupMesh(broker.admin, { members: ["alice"] });
  meshSlug = setup.mesh.slug;
  alice = setup.members[0] as SetupMember;
  session = await startMcp(home, { url: broker.url, mesh: meshSlug, keyFile: keyFileFor(home, alice.identity) });
  await session.connected();
});
afterAll(async () => {
  await session?.close();
  home.dispose();
});

test("a burst of messages from a sender no list names costs one lookup: list_peers still goes through after it, and a list that names the sender names its next message", async () => {
  const bot = await newIdentity();
  const enrolled = await broker.admin.addMember(meshSlug, { pubkey: bot.publicKey, displayName: "http-bot" });
  const token = await broker.admin.createApiToken(meshSlug, enrolled.id);
  const post = async (text: string): Promise<string> => {
    const body = { targetSpec: alice.pubkey, nonce: "plain", ciphertext: Buffer.from(JSON.stringify(text)).toString("base64") };
    const response = await fetch(`${broker.url}/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(201);
    return ((await response.json()) as { messageId: string }).messageId;
  };

  const sent: string[] = [];
  for (let i = 0; i < BURST; i++) sent.push(await post(`burst ${i}`));
  const last = await session.note((n) => n.meta.message_id === sent.at(-1), "the burst's last message");
  const burst = session.notes.items.filter((n) => sent.includes(n.meta.message_id ?? ""));
  expect(burst.map((n) => [n.meta.message_id, n.meta.from])).toEqual(sent.map((id) => [id, bot.publicKey.slice(0, 8)]));
  expect(last.meta.from).toBe(bot.publicKey.slice(0, 8));

  // The member's control frames are not spent: its list_peers is not rate_limited.
  const online = await TestPeer.connect(broker.wsUrl, { identity: bot, meshId: meshSlug });
  try {
    const { peers } = await session.ok("list_peers");
    expect(peers).toEqual(expect.arrayContaining([expect.objectContaining({ display_name: "http-bot", pubkey: bot.publicKey })]));
    const named = await post("after a list named it");
    const note = await session.note((n) => n.meta.message_id === named, "the message after list_peers named the sender");
    expect(note.meta.from).toBe("http-bot");
  } finally {
    await online.close();
  }
});
