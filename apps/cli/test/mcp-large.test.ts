// A message larger than a page of check_messages (the broker's
// MAX_MESSAGE_BYTES raised) reaches the model whole, over successive calls,
// and no call's result is past what Claude Code takes from a tool.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { setupMesh, TestPeer, useTestBroker, type SetupMember } from "@switchboard/testkit";
import { estimateTokens } from "../src/mcp/inbox.ts";
import { CliHome } from "./support/cli.ts";
import { keyFileFor, startMcp, type McpSession } from "./support/mcp.ts";

/** Claude Code moves a result of more characters into a file, and refuses one of more tokens (MAX_MCP_OUTPUT_TOKENS by default). */
const CLAUDE_CODE_RESULT_CHARS = 50_000;
const CLAUDE_CODE_RESULT_TOKENS = 25_000;

const broker = useTestBroker({ MAX_MESSAGE_BYTES: "262144" });
const home = new CliHome();
let session: McpSession;
let sender: TestPeer;
let alicePubkey: string;

beforeAll(async () => {
  const { mesh, members } = await setupMesh(broker.admin, { members: ["alice", "bob"] });
  const [alice, bob] = members as [SetupMember, SetupMember];
  alicePubkey = alice.pubkey;
  session = await startMcp(home, { url: broker.url, mesh: mesh.slug, keyFile: keyFileFor(home, alice.identity) });
  await session.connected();
  sender = await TestPeer.connect(broker.wsUrl, { identity: bob.identity, meshId: mesh.id });
});
afterAll(async () => {
  await session?.close();
  await sender?.close();
  home.dispose();
});

test("check_messages hands a message larger than a page over in parts (same message_id, part i of n), each result within Claude Code's limits", async () => {
  const text = "漢字 parser ok\n".repeat(8_000);
  const ack = await sender.send(alicePubkey, { nonce: "plain", ciphertext: Buffer.from(JSON.stringify(text)).toString("base64") });
  const messageId = String(ack.messageId);
  await session.note((n) => n.meta.message_id === messageId, "the large message");

  const parts: Array<{ message_id: string; text: string; part: number; parts: number }> = [];
  for (let more = 1; more > 0; ) {
    const result = await session.call("check_messages");
    expect(result.isError).toBe(false);
    expect(result.text.length).toBeLessThanOrEqual(CLAUDE_CODE_RESULT_CHARS);
    expect(estimateTokens(result.text)).toBeLessThanOrEqual(CLAUDE_CODE_RESULT_TOKENS);
    parts.push(...(result.data.messages as typeof parts));
    more = (result.data.more as number | undefined) ?? 0;
  }
  expect(parts.length).toBeGreaterThan(1);
  expect(parts.map((p) => [p.message_id, p.part, p.parts])).toEqual(parts.map((_, i) => [messageId, i + 1, parts.length]));
  expect(parts.map((p) => p.text).join("")).toBe(text);
  expect(await session.ok("check_messages")).toEqual({ messages: [] });
});
