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

/** Takes pages until none is left, checking each against Claude Code's limits; the entries in the order handed over. */
function takeAll(inbox: SessionInbox): InboxEntry[] {
  const taken: InboxEntry[] = [];
  for (let more = 1; more > 0; ) {
    const page = inbox.take();
    const json = page.messages.map((m) => JSON.stringify(m));
    expect(json.join("").length).toBeLessThanOrEqual(PAGE_CHARS);
    expect(estimateTokens(json.join(""))).toBeLessThanOrEqual(PAGE_TOKENS);
    expect(page.messages.length).toBeGreaterThan(0);
    taken.push(...page.messages);
    more = page.more;
  }
  return taken;
}

test("one message larger than a page comes in parts over successive calls, each within a page, marked part i of n, nothing lost", () => {
  // ASCII, text beyond ASCII (a token a character), astral characters (never cut in two), and characters JSON escapes at six times their length.
  const texts = ["y".repeat(PAGE_CHARS * 2 + 7), "漢字".repeat(PAGE_TOKENS), `a😀"\\n`.repeat(PAGE_CHARS), "\u0001".repeat(PAGE_CHARS)];
  for (const text of texts) {
    const inbox = new SessionInbox();
    inbox.add(entry(0));
    inbox.add(entry(1, text));
    inbox.add(entry(2));
    const taken = takeAll(inbox);
    expect(taken[0]).toEqual(entry(0));
    expect(taken.at(-1)).toEqual(entry(2));
    const parts = taken.slice(1, -1);
    expect(parts.length).toBeGreaterThan(1);
    parts.forEach((p, i) => {
      expect({ ...p, text: "" }).toEqual({ ...entry(1, ""), part: i + 1, parts: parts.length });
      expect(p.text.isWellFormed()).toBe(true);
    });
    expect(parts.map((p) => p.text).join("")).toBe(text);
  }
});

test("`more` counts each part of a message that will come in parts, before its cutting as after: each call hands over as many as it said fewer", () => {
  const inbox = new SessionInbox();
  const big = "w".repeat(PAGE_CHARS * 2 + 3);
  inbox.add(entry(0, "x".repeat(PAGE_CHARS / 2)));
  inbox.add(entry(1, big));
  inbox.add(entry(2, big));
  inbox.add(entry(3));
  const counts: Array<{ handed: number; more: number }> = [];
  for (let more = 1; more > 0; ) {
    const page = inbox.take();
    counts.push({ handed: page.messages.length, more: page.more });
    more = page.more;
  }
  const total = counts.reduce((n, c) => n + c.handed, 0);
  expect(counts.map((c, i) => total - counts.slice(0, i + 1).reduce((n, d) => n + d.handed, 0))).toEqual(counts.map((c) => c.more));
});

test("a message in parts is kept whole while the inbox overflows: only whole messages are dropped", () => {
  const inbox = new SessionInbox();
  const text = "z".repeat(PAGE_CHARS * 3);
  inbox.add(entry(0, text));
  const [first] = inbox.take().messages;
  expect(first).toMatchObject({ message_id: "m-0", part: 1 });
  const parts = first?.parts ?? 0;
  for (let i = 1; i <= MAX_ENTRIES + 1; i++) inbox.add(entry(i));
  const rest = takeAll(inbox);
  const later = rest.slice(0, parts - 1);
  expect(later.map((m) => [m.message_id, m.part])).toEqual(Array.from({ length: parts - 1 }, (_, i) => ["m-0", i + 2]));
  expect(first?.text + later.map((m) => m.text).join("")).toBe(text);
  expect(rest.slice(parts - 1).map((m) => m.message_id)).toEqual(Array.from({ length: MAX_ENTRIES }, (_, i) => `m-${i + 2}`));
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
