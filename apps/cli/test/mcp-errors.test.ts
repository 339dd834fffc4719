// How a tool failure reads to the model: a send that failed without the
// broker's verdict names the id to send it again with.
import { expect, test } from "bun:test";
import { SwitchboardError } from "@switchboard/client";
import { toolErrorOf } from "../src/mcp/errors.ts";
import { failure } from "../src/mcp/tools.ts";

test("a send that timed out names its id in the text and the structured error; other errors do not", () => {
  const timedOut = failure(toolErrorOf(new SwitchboardError("timeout", "no answer from the broker within 15000 ms", { sendId: "send-1" })));
  expect(timedOut.isError).toBe(true);
  expect(timedOut.structuredContent).toEqual({ error: { code: "timeout", message: "no answer from the broker within 15000 ms", send_id: "send-1" } });
  expect(timedOut.content).toEqual([{ type: "text", text: 'timeout: no answer from the broker within 15000 ms (to send it again, pass id: "send-1")' }]);

  const refused = failure(toolErrorOf(new SwitchboardError("unknown_target", "no member named carol")));
  expect(refused.structuredContent).toEqual({ error: { code: "unknown_target", message: "no member named carol" } });
  expect(refused.content).toEqual([{ type: "text", text: "unknown_target: no member named carol" }]);
});
