// How a tool failure reads to the model: a send that failed without the
// broker's verdict names the id to send it again with.
import { expect, test } from "bun:test";
import { SwitchboardError } from "@switchboard/client";
import { toolErrorOf } from "../src/mcp/errors.ts";
import { callTool, failure, toolList, type ToolContext } from "../src/mcp/tools.ts";

/** Arguments are refused before the context is used: a context that fails any use shows none happened. */
function untouchedContext(): ToolContext {
  const unused = (): never => {
    throw new Error("the tool ran");
  };
  return { client: unused, directory: { resolve: unused }, inbox: { take: unused } } as unknown as ToolContext;
}

test("a send that timed out names its id in the text and the structured error; other errors do not", () => {
  const timedOut = failure(toolErrorOf(new SwitchboardError("timeout", "no answer from the broker within 15000 ms", { sendId: "send-1" })));
  expect(timedOut.isError).toBe(true);
  expect(timedOut.structuredContent).toEqual({ error: { code: "timeout", message: "no answer from the broker within 15000 ms", send_id: "send-1" } });
  expect(timedOut.content).toEqual([{ type: "text", text: 'timeout: no answer from the broker within 15000 ms (to send it again, pass id: "send-1")' }]);

  const refused = failure(toolErrorOf(new SwitchboardError("unknown_target", "no member named carol")));
  expect(refused.structuredContent).toEqual({ error: { code: "unknown_target", message: "no member named carol" } });
  expect(refused.content).toEqual([{ type: "text", text: "unknown_target: no member named carol" }]);
});

test("a reply_to that is not a message id is refused as invalid, naming reply_to (not the SDK's replyTo), before anything is sent", async () => {
  const ctx = untouchedContext();
  const bad = await callTool("send_message", { to: "bob", text: "hi", reply_to: "msg-1" }, ctx);
  expect(bad.isError).toBe(true);
  expect(bad.structuredContent).toEqual({ error: { code: "invalid", message: "reply_to: a message_id as received (a UUID)" } });
  const schema = toolList().find((t) => t.name === "send_message")?.inputSchema as { properties: Record<string, unknown> };
  expect(schema.properties.reply_to).toMatchObject({ type: "string", format: "uuid" });
});

test("an empty text, or whitespace alone, is refused as invalid, naming text, before anything is sent", async () => {
  const ctx = untouchedContext();
  const empty = await callTool("send_message", { to: "bob", text: "" }, ctx);
  expect(empty.isError).toBe(true);
  expect(empty.structuredContent).toEqual({ error: { code: "invalid", message: "text: must not be empty: give the message to send" } });
  expect(empty.content).toEqual([{ type: "text", text: "invalid: text: must not be empty: give the message to send" }]);
  const blank = await callTool("send_message", { to: "bob", text: " \n\t " }, ctx);
  expect(blank.structuredContent).toEqual({ error: { code: "invalid", message: "text: must not be empty: give the message to send" } });
  const schema = toolList().find((t) => t.name === "send_message")?.inputSchema as { properties: Record<string, unknown> };
  expect(schema.properties.text).toMatchObject({ type: "string", minLength: 1 });
});

test("an argument no tool takes is refused as invalid, naming it and the tool's arguments, before anything is sent (the schema says additionalProperties: false)", async () => {
  const ctx = untouchedContext();
  // A camelCase reply_to would otherwise send the message as no answer, and a misspelled priority at "next".
  const camel = await callTool("send_message", { to: "bob", text: "hi", replyTo: "00000000-0000-4000-8000-000000000000" }, ctx);
  expect(camel.isError).toBe(true);
  expect(camel.structuredContent).toEqual({
    error: { code: "invalid", message: 'arguments: unknown argument "replyTo" (send_message takes to, text, priority, reply_to, id)' },
  });
  const extra = await callTool("check_messages", { all: true }, ctx);
  expect(extra.structuredContent).toEqual({ error: { code: "invalid", message: 'arguments: unknown argument "all" (check_messages takes none)' } });
  for (const tool of toolList()) expect(tool.inputSchema).toMatchObject({ additionalProperties: false });
});
