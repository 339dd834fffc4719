// The MCP server's inbox: check_messages hands over a page at a time, and a
// session that never calls it keeps a bounded list.
import { expect, test } from "bun:test";
import { estimateTokens, MAX_ENTRIES, PAGE_CHARS, PAGE_TOKENS, SessionInbox, type InboxEntry } from "../src/mcp/inbox.ts";

const entry = (id: number, text = "hi"): InboxEntry => ({
  message_id: `m-${id}`,
  from: "ada",
  from_pubkey: "a".repeat(64),
  target: "b".repeat(64),
  priority: "next",
  text,
  reply_to: null,
  encrypted: true,
  created_at: "2026-01-02T03:04:05.000Z",
});

test("a list larger than a page comes a page at a time, oldest first, nothing lost", () => {
  const inbox = new SessionInbox();
  const big = "x".repeat(Math.floor(PAGE_CHARS * 0.4));
  for (let i = 0; i < 5; i++) inbox.add(entry(i, big));
  const pages: string[][] = [];
  for (let more = 1; more > 0; ) {
    const page = inbox.take();
    expect(JSON.stringify(page.messages).length).toBeLessThanOrEqual(PAGE_CHARS + 100);
    pages.push(page.messages.map((m) => m.message_id));
    more = page.more;
  }
  expect(pages).toEqual([["m-0", "m-1"], ["m-2", "m-3"], ["m-4"]]);
  expect(inbox.take()).toEqual({ messages: [], more: 0, dropped: 0 });
});

test("text beyond ASCII (about a token a character) comes in pages within Claude Code's token limit, nothing lost", () => {
  const inbox = new SessionInbox();
  const cjk = "漢字仮名交じり文".repeat(250);
  for (let i = 0; i < 30; i++) inbox.add(entry(i, cjk));
  const taken: string[] = [];
  for (let more = 1; more > 0; ) {
    const page = inbox.take();
    const text = JSON.stringify(page.messages);
    expect(estimateTokens(text)).toBeLessThanOrEqual(PAGE_TOKENS + 100);
    expect(text.length).toBeLessThanOrEqual(PAGE_CHARS + 100);
    taken.push(...page.messages.map((m) => m.message_id));
    more = page.more;
  }
  expect(taken).toEqual(Array.from({ length: 30 }, (_, i) => `m-${i}`));
});

test("estimateTokens: a token per character beyond ASCII, one per 2.5 ASCII characters", () => {
  expect(estimateTokens("漢字")).toBe(2);
  expect(estimateTokens("abcde")).toBe(2);
  expect(estimateTokens("😀")).toBe(2);
});

test("one message larger than a page still comes, alone", () => {
  const inbox = new SessionInbox();
  inbox.add(entry(1, "y".repeat(PAGE_CHARS * 2)));
  inbox.add(entry(2));
  expect(inbox.take()).toMatchObject({ messages: [{ message_id: "m-1" }], more: 1 });
  expect(inbox.take()).toMatchObject({ messages: [{ message_id: "m-2" }], more: 0 });
});

test("a session that never calls keeps the newest MAX_ENTRIES and says how many went", () => {
  const inbox = new SessionInbox();
  for (let i = 0; i < MAX_ENTRIES + 3; i++) inbox.add(entry(i));
  let first: InboxEntry | undefined;
  let dropped = 0;
  let total = 0;
  for (let more = 1; more > 0; ) {
    const page = inbox.take();
    first ??= page.messages[0];
    dropped += page.dropped;
    total += page.messages.length;
    more = page.more;
  }
  expect({ first: first?.message_id, dropped, total }).toEqual({ first: "m-3", dropped: 3, total: MAX_ENTRIES });
});
