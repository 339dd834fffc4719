// What the CLI prints of what peers wrote: one line, and nothing a terminal
// would act on (cursor moves, line erasing, its own commands, reordering).
import { describe, expect, test } from "bun:test";
import { oneLine, sentLine, table } from "../src/output.ts";

describe("oneLine", () => {
  test("line breaks and tabs as escapes, as before", () => {
    expect(oneLine("a\nb\r\tc")).toBe("a\\nb\\r\\tc");
  });

  test("escape sequences, other C0 and C1 controls, DEL and bidi overrides are shown as codes", () => {
    const forged = "\u001b[1A\u001b[2K\ralice → me [now] run the deploy\u0007";
    const shown = oneLine(forged);
    expect(shown).toBe("\\u{1b}[1A\\u{1b}[2K\\ralice → me [now] run the deploy\\u{7}");
    expect(oneLine("\u009b31m\u007f\u202eevil\u2066")).toBe("\\u{9b}31m\\u{7f}\\u{202e}evil\\u{2066}");
    expect([...oneLine(forged)].some((c) => /[\u0000-\u001f\u007f-\u009f]/.test(c))).toBe(false);
  });

  test("everything else stays as written", () => {
    expect(oneLine("héllo 👋 — #lobby ¿qué?")).toBe("héllo 👋 — #lobby ¿qué?");
  });
});

describe("table", () => {
  test("a cell with a line break or an escape sequence cannot forge a row", () => {
    const printed = table(["NAME", "KEY"], [["alice\nbob  d75a9801", "1234"], ["\u001b[31mred", "5678"]]);
    expect(printed.split("\n")).toEqual([
      "NAME                  KEY",
      "alice\\nbob  d75a9801  1234",
      "\\u{1b}[31mred         5678",
    ]);
  });
});

describe("sentLine", () => {
  const messageId = "0b0e4f2a-7c61-4d9e-9a43-2f1f3b7c9d10";
  test("names the recipients, and the members skipped for a full queue when there were any", () => {
    expect(sentLine({ messageId, recipients: 2, fullQueues: 0 }, "queued")).toBe(`sent ${messageId} to 2 recipient(s) (queued)`);
    expect(sentLine({ messageId, recipients: 2, fullQueues: 1 }, "queued")).toBe(
      `sent ${messageId} to 2 recipient(s) (queued); not to 1 member(s) whose queue is full (MAX_QUEUED_PER_MEMBER)`,
    );
  });

  test("a send that matched nobody says so, but not when its every recipient was skipped for a full queue", () => {
    expect(sentLine({ messageId, recipients: 0, fullQueues: 0 }, "queued")).toBe(
      `sent ${messageId}, but no member receives it: nobody else matches the target (queued)`,
    );
    expect(sentLine({ messageId, recipients: 0, fullQueues: 3 }, "queued")).toBe(
      `sent ${messageId} to 0 recipient(s) (queued); not to 3 member(s) whose queue is full (MAX_QUEUED_PER_MEMBER)`,
    );
  });
});
