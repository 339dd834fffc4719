// What the chat page shows and keeps, in a real Chromium against a real
// broker: any payload as a visible line; a message on its way marked pending
// until the broker has it, and failed with its text back in the box; a
// revoked member's reload starting afresh; the scroll and the keyboard focus
// kept through events; the room from the URL hash checked and followed; own
// lines in the broker's order whatever the tab's clock; the rooms and a "not
// connected" state before the first connection; a hint for an origin the
// broker refuses; live regions and a spoken separator for screen readers;
// names and messages in right-to-left scripts kept apart, each in its own
// direction.
// And the dashboard's login form: a named token field, a readable error.
import { describe, expect, test } from "bun:test";
import { REPO_ROOT, spawnBroker } from "@switchboard/testkit";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { allShown, connected, contrastOf, enabled, inRoom, newContext, openChat, programPeer, say, shows, stage, storedKey, texts, useStage, WAIT } from "./stage.ts";

useStage();

const OUT = join(REPO_ROOT, "bench", "out");

async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: join(OUT, name) });
}

/** The text the message list shows when it has no line (its ::after). */
const emptyText = (page: Page) => page.evaluate(`getComputedStyle(document.getElementById("messages"), "::after").content`) as Promise<string>;

/** Page code (as text: this file is typechecked without the DOM library): whether the list is scrolled to its end. */
const AT_BOTTOM = `(() => { const l = document.getElementById("messages"); return l.scrollHeight - l.scrollTop - l.clientHeight < 2; })()`;

describe.skipIf(!enabled)("chat page lines", () => {
  test("a payload that is a string shows as its text; any other as its JSON, cut short when long; none is blank", async () => {
    const page = await openChat(await newContext(), "ada", "random");
    const { client } = await programPeer("random");
    await client.send("#random", "a plain string, as the CLI sends");
    await client.send("#random", { kind: "ping", n: 1 });
    await client.send("#random", { blob: "y".repeat(500) });
    await client.send("#random", { text: "the end" });
    await allShown(page, ["a plain string, as the CLI sends", '{"kind":"ping","n":1}', "the end"]);
    const long = (await texts(page)).find((t) => t.startsWith('{"blob":"yyy'));
    expect(long).toBeDefined();
    expect(long!.length).toBeLessThan(300);
    expect(long!.endsWith("…")).toBe(true);
    expect((await texts(page)).filter((t) => t.trim() === "")).toEqual([]);
  });

  test("a token the page's backend does not give is what the header says, however often asked; not a broker that may be down", async () => {
    const page = await (await newContext()).newPage();
    let asked = 0;
    await page.route("**/token", (route) => {
      asked++;
      return route.fulfill({ status: 403, contentType: "application/json", body: '{"error":"that key is not yours"}' });
    });
    await page.goto(`${stage.demo.url}/?name=pia#lobby`);
    // More tries than the page makes before it blames the broker.
    for (let i = 0; i < 200 && asked < 5; i++) await page.waitForTimeout(100);
    expect(asked).toBeGreaterThanOrEqual(5);
    expect(await page.textContent("#problem")).toBe("the page's backend gave no token (403 that key is not yours)");
    await page.unroute("**/token");
    await inRoom(page, "lobby");
    expect(await page.textContent("#problem")).toBe("");
  });

  test("typing follows the room: typed on in another room it shows there at once, and stops in the room left", async () => {
    const ann = await openChat(await newContext(), "ann", "lobby");
    const cat = await openChat(await newContext(), "cat", "lobby");
    const bob = await openChat(await newContext(), "bob", "support");
    const typing = (who: string) => `document.getElementById("typing").textContent === ${JSON.stringify(who)}`;
    await ann.type("#text", "hel");
    await cat.waitForFunction(typing("ann is typing…"), undefined, WAIT);
    await ann.click('#rooms button[data-room="support"]');
    await inRoom(ann, "support");
    await ann.type("#text", "lo");
    await bob.waitForFunction(typing("ann is typing…"), undefined, WAIT);
    // Well before the 6 s a typing that is not repeated lasts.
    await cat.waitForFunction(typing(""), undefined, { timeout: 3000 });
  });

  test("a message waits an hour at most for a tab that is gone (every tab is a member of its own), not the broker's week; the history keeps it", async () => {
    const page = await openChat(await newContext(), "gus", "random");
    const gone = await openChat(await newContext(), "hal", "random");
    await gone.context().close();
    await say(page, "for whoever is still here");
    const messageId = await page.getAttribute(`#messages li[data-state="sent"]:has-text("for whoever is still here")`, "data-id");
    const status = (await (await stage.admin.raw("GET", `/v1/messages/${messageId}`)).json()) as { createdAt: string; expiresAt: string };
    expect(Date.parse(status.expiresAt) - Date.parse(status.createdAt)).toBe(3600_000);
    const late = await openChat(await newContext(), "ida", "random");
    await shows(late, "for whoever is still here");
  });

  test("a message sent while the broker is away shows as pending until the broker has it; a send refused shows failed with its text back in the box", async () => {
    const page = await openChat(await newContext(), "bea", "support");
    const other = await openChat(await newContext(), "cy", "support");
    expect(await stage.broker.stop()).toBe(0);
    // Back whatever happens here: the later tests need it.
    try {
      await page.waitForSelector('#connection[data-state="reconnecting"]', WAIT);
      await page.fill("#text", "said while the broker was away");
      await page.press("#text", "Enter");
      const pending = await page.waitForSelector('#messages li[data-state="pending"]:has-text("said while the broker was away")', WAIT);
      expect(await pending.isVisible()).toBe(true);
      await screenshot(page, "chat-pending.png");
    } finally {
      stage.broker = await spawnBroker(stage.brokerEnv);
    }
    await connected(page);
    await page.waitForSelector('#messages li[data-state="sent"]:has-text("said while the broker was away")', WAIT);
    await shows(other, "said while the broker was away");

    await page.fill("#text", "x".repeat(70_000));
    await page.press("#text", "Enter");
    await page.waitForSelector('#messages li[data-state="failed"]', WAIT);
    expect(await page.inputValue("#text")).toBe("x".repeat(70_000));
    // The line quotes the start of it: the whole text is back in the box.
    expect(await page.textContent('#messages li[data-state="failed"] .text')).toBe(`${"x".repeat(200)}…`);
    await screenshot(page, "chat-failed.png");
  });

  test("a revoked member: the online list empties, and a reload starts afresh as a new member", async () => {
    const page = await openChat(await newContext(), "tess", "lobby");
    const key = await storedKey(page);
    const pubkey = await page.getAttribute(`#online li:has-text("tess")`, "data-pubkey");
    await stage.admin.revokeMember(stage.mesh.id, pubkey!);
    await page.waitForSelector('#connection[data-state="closed"]', WAIT);
    await page.waitForFunction(`document.querySelectorAll("#online li").length === 0`, undefined, WAIT);
    expect(await page.getAttribute("#online", "data-stale")).not.toBeNull();
    await screenshot(page, "chat-revoked.png");
    await page.reload();
    await inRoom(page, "lobby");
    expect(await storedKey(page)).not.toBe(key);
  });

  test("a page closed for good shows nobody typing: a typing it heard does not stay on it for ever", async () => {
    const page = await openChat(await newContext(), "uli", "support");
    const other = await openChat(await newContext(), "vic", "support");
    await other.type("#text", "wait");
    await page.waitForFunction(`document.getElementById("typing").textContent === "vic is typing…"`, undefined, WAIT);
    const pubkey = await page.getAttribute(`#online li:has-text("uli")`, "data-pubkey");
    await stage.admin.revokeMember(stage.mesh.id, pubkey!);
    await page.waitForSelector('#connection[data-state="closed"]', WAIT);
    // Past the 6 s a typing that is not repeated lasts.
    await page.waitForTimeout(7000);
    expect(await page.textContent("#typing")).toBe("");
  });

  test("the list keeps where the reader scrolled to through typing and others' messages, and goes to the end for the reader's own", async () => {
    const page = await openChat(await newContext({ viewport: { width: 900, height: 420 } }), "dee", "random");
    const { client } = await programPeer("random");
    const many = Array.from({ length: 40 }, (_, i) => `line ${i} to scroll past`);
    for (const text of many) await client.send("#random", { text });
    await allShown(page, many);
    // At the end it stays at the end as lines come.
    await page.waitForFunction(AT_BOTTOM, undefined, WAIT);
    await page.evaluate(`document.getElementById("messages").scrollTop = 0`);
    await client.setTyping("#random", true);
    await page.waitForFunction(`document.getElementById("typing").textContent === "program is typing…"`, undefined, WAIT);
    await client.send("#random", { text: "while dee reads back" });
    await shows(page, "while dee reads back");
    expect(await page.evaluate(`document.getElementById("messages").scrollTop`)).toBe(0);
    await say(page, "dee speaks");
    await page.waitForFunction(AT_BOTTOM, undefined, WAIT);
  });

  test("a room button keeps the keyboard's focus through events and when it opens its room", async () => {
    const page = await openChat(await newContext(), "eve", "lobby");
    const { client } = await programPeer("lobby");
    await page.focus('#rooms button[data-room="support"]');
    await client.send("#lobby", { text: "while eve tabs through the rooms" });
    await shows(page, "while eve tabs through the rooms");
    expect(await page.evaluate(`document.activeElement.dataset.room`)).toBe("support");
    await page.keyboard.press("Enter");
    await inRoom(page, "support");
    expect(await page.evaluate(`document.activeElement.dataset.room`)).toBe("support");
  });

  test("a hash that names no room opens the first room, a bad one too without an error; Back goes to the room before", async () => {
    const context = await newContext();
    const unknown = await context.newPage();
    await unknown.goto(`${stage.demo.url}/?name=fay#nowhere`);
    await inRoom(unknown, "lobby");
    expect(await unknown.evaluate("location.hash")).toBe("#lobby");

    const bad = await context.newPage();
    const errors: string[] = [];
    bad.on("pageerror", (error) => errors.push(error.message));
    await bad.goto(`${stage.demo.url}/?name=fay#bad%20room`);
    await inRoom(bad, "lobby");
    await bad.click('#rooms button[data-room="support"]');
    await inRoom(bad, "support");
    await bad.goBack();
    await inRoom(bad, "lobby");
    expect(await bad.getAttribute('#rooms button[data-room="lobby"]', "aria-current")).toBe("true");
    expect(errors).toEqual([]);
  });

  test("own lines take their place by the broker's clock, not a tab's clock an hour behind", async () => {
    const context = await newContext();
    await context.clock.install({ time: Date.now() - 3_600_000 });
    const page = await openChat(context, "gus", "support");
    const { client } = await programPeer("support");
    await client.send("#support", { text: "skew 1 from the program" });
    await shows(page, "skew 1 from the program");
    await say(page, "skew 2 from gus");
    await client.send("#support", { text: "skew 3 from the program" });
    await shows(page, "skew 3 from the program");
    expect((await texts(page)).filter((t) => t.startsWith("skew "))).toEqual(["skew 1 from the program", "skew 2 from gus", "skew 3 from the program"]);
    // Read again from the history, as after a reload: the same order.
    await page.reload();
    await inRoom(page, "support");
    expect((await texts(page)).filter((t) => t.startsWith("skew "))).toEqual(["skew 1 from the program", "skew 2 from gus", "skew 3 from the program"]);
  });

  test("a page that cannot connect yet shows the rooms and says it is not connected, not that the room is empty", async () => {
    const { client } = await programPeer("lobby");
    await client.send("#lobby", { text: "history waiting to be read" });
    const page = await (await newContext()).newPage();
    await page.route("**/token", (route) => route.abort());
    await page.goto(`${stage.demo.url}/?name=hal#lobby`);
    await page.waitForFunction(`document.querySelectorAll("#rooms button").length === 3`, undefined, WAIT);
    await page.waitForSelector("#chat:not([hidden])", WAIT);
    expect(await emptyText(page)).toContain("Not connected");
    await screenshot(page, "chat-not-connected.png");
    await page.unroute("**/token");
    await inRoom(page, "lobby");
    await shows(page, "history waiting to be read");
  });

  test("a page whose origin the broker refuses says, after a few tries, which broker and that CORS_ORIGINS must list the origin", async () => {
    const page = await (await newContext()).newPage();
    const origin = stage.demo.url.replace("127.0.0.1", "localhost");
    await page.goto(`${origin}/?name=ivy#lobby`);
    await page.waitForFunction(`document.getElementById("problem").textContent.includes("CORS_ORIGINS")`, undefined, WAIT);
    const problem = (await page.textContent("#problem")) ?? "";
    expect(problem).toContain(stage.broker.url);
    expect(problem).toContain(origin);
    await screenshot(page, "chat-cors-hint.png");
  });

  test("for a screen reader: new lines and typing are announced politely, and a line reads its sender apart from its text", async () => {
    const page = await openChat(await newContext(), "jo", "lobby");
    await say(page, "jo says hi");
    expect(await page.getAttribute("#messages", "aria-live")).toBe("polite");
    expect(await page.getAttribute("#typing", "aria-live")).toBe("polite");
    const line = page.locator('#messages li:has-text("jo says hi")');
    // Chromium may space the parts apart: what counts is the separator between them.
    expect(await line.ariaSnapshot()).toMatch(/jo\s*:\s*jo says hi/);
  });
});

/**
 * Page code (as text: this file is typechecked without the DOM library):
 * where the line whose text is `text` draws its name, and its text's first
 * and last characters, in pixels from the left.
 */
const drawnAt = (text: string) => `(() => {
  const li = [...document.querySelectorAll("#messages li")].find((l) => l.querySelector(".text").textContent === ${JSON.stringify(text)});
  const node = li.querySelector(".text").firstChild;
  const at = (i) => { const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1); return r.getBoundingClientRect().left; };
  const who = li.querySelector(".who").getBoundingClientRect();
  return { nameLeft: who.left, nameRight: who.right, first: at(0), last: at(node.length - 1) };
})()`;

describe.skipIf(!enabled)("chat page in right-to-left scripts", () => {
  test("a name in Arabic keeps apart from its message's digits, and a Hebrew message reads right to left", async () => {
    const rana = await openChat(await newContext(), encodeURIComponent("رنا"), "support");
    const reader = await openChat(await newContext(), "reader", "support");
    await say(rana, "3 apples");
    await say(reader, "מה שלומך?");
    await shows(rana, "מה שלומך?");
    await shows(reader, "3 apples");
    // The digit is the message's: drawn after the name, not pulled before it into the name's run.
    const digits = (await reader.evaluate(drawnAt("3 apples"))) as { nameLeft: number; nameRight: number; first: number };
    expect(digits.first).toBeGreaterThanOrEqual(digits.nameRight);
    // Read right to left, the question ends the sentence: its mark is drawn leftmost.
    const question = (await rana.evaluate(drawnAt("מה שלומך?"))) as { first: number; last: number };
    expect(question.last).toBeLessThan(question.first);
    await screenshot(reader, "chat-rtl.png");
  });
});

describe.skipIf(!enabled)("dashboard login", () => {
  test("the token field has a name, and the login error is readable (contrast at least 4.5:1)", async () => {
    const page = await (await newContext()).newPage();
    await page.goto(`${stage.broker.url}/dashboard`);
    expect(await page.getByLabel("Admin token").count()).toBe(1);
    await page.getByLabel("Admin token").fill("not-the-admin-token");
    await page.press("#token", "Enter");
    await page.waitForFunction(`document.getElementById("login-error").textContent !== ""`, undefined, WAIT);
    expect(await page.evaluate(contrastOf(`document.getElementById("login-error")`))).toBeGreaterThanOrEqual(4.5);
  });
});

