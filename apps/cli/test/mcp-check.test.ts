// check_messages while the server has no connection to the broker: the
// (perhaps empty) list says so, with why, instead of reading as "nobody
// wrote" to a session that only ever sees messages through this call.
import { expect, test } from "bun:test";
import type { SwitchboardClient } from "@switchboard/client";
import { ToolError } from "../src/mcp/errors.ts";
import { SessionInbox } from "../src/mcp/inbox.ts";
import { callTool, type ToolContext } from "../src/mcp/tools.ts";

const down = new ToolError("unavailable", "not connected to the broker yet; retrying in the background (last try: unreachable: cannot connect)");

test("check_messages without a connection names it beside the messages", async () => {
  const ctx = {
    client: () => {
      throw down;
    },
    directory: {},
    inbox: new SessionInbox(),
  } as unknown as ToolContext;
  const result = await callTool("check_messages", {}, ctx);
  expect(result.isError).toBeUndefined();
  expect(result.structuredContent).toEqual({ messages: [], connection: { code: "unavailable", message: down.message } });
});

test("check_messages with a connection says nothing of it", async () => {
  const ctx = { client: () => ({}) as SwitchboardClient, directory: {}, inbox: new SessionInbox() } as unknown as ToolContext;
  expect((await callTool("check_messages", {}, ctx)).structuredContent).toEqual({ messages: [] });
});
