// set_status as the model reads it: a status the broker kept (a hook's, which
// outranks a manual idle or working for a while) is said to be kept, not
// answered as if it were the one asked for.
import { expect, test } from "bun:test";
import type { SwitchboardClient } from "@switchboard/client";
import { callTool, type ToolContext } from "../src/mcp/tools.ts";

function contextAnswering(status: string, statusSource: string): ToolContext {
  const client = { setStatus: async () => ({ status, statusSource }) } as unknown as SwitchboardClient;
  return { client: () => client, directory: {}, inbox: {} } as unknown as ToolContext;
}

test("a set_status the broker did not apply says which status stays and why", async () => {
  const kept = await callTool("set_status", { status: "idle" }, contextAnswering("working", "hook"));
  expect(kept.isError).toBeUndefined();
  expect(kept.structuredContent).toEqual({
    status: "working",
    status_source: "hook",
    applied: false,
    note: "the status stays working: Claude Code's hooks set it (working when a turn starts, idle when it ends) and outrank set_status idle or working for a while after; dnd always applies",
  });
});

test("a set_status the broker applied says so", async () => {
  const done = await callTool("set_status", { status: "dnd" }, contextAnswering("dnd", "manual"));
  expect(done.structuredContent).toEqual({ status: "dnd", status_source: "manual", applied: true });
});
