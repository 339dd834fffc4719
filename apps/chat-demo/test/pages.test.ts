// How the chat demo and the dashboard look and fail, in a real Chromium: the
// name form goes once used; a phone's width cuts nothing off (screenshots
// under bench/out/) and the console stays clean; a refused name, a closed
// page and an unsent message say why; senders who left are still named; a tab
// opened from another gets a key of its own (or, where no lock can be had,
// starts again with one when the other replaced it); the dashboard forgets
// its token when asked, keeps it through a broker that does not answer, says
// when what it shows is old (a refresh left unanswered too), and drops a
// revoked member.
import { describe, expect, test } from "bun:test";
import { REPO_ROOT, spawnBroker, waitUntil } from "@switchboard/testkit";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { ADMIN_TOKEN, contrastOf, enabled, holdRoute, inRoom, newContext, openChat, programPeer, say, shows, stage, storedKey, useStage, WAIT } from "./stage.ts";

useStage();

const PHONE = { width: 390, height: 800 };
const OUT = join(REPO_ROOT, "bench", "out");

/** How far the page is wider than its window: 0 when nothing needs a sideways scroll. */
const overflow = (page: Page) => page.evaluate("document.documentElement.scrollWidth - window.innerWidth") as Promise<number>;

const visible = (page: Page, selector: string) => page.isVisible(selector);

/** The errors the page's console reports from now on (a missing favicon is one). */
function consoleErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  return errors;
}

/**
 * Whether the page loaded again: a tab whose session another connection took
 * starts again, which would hide a wrong answer of the session's lock.
 */
const reloaded = (page: Page) => page.evaluate(`performance.getEntriesByType("navigation")[0].type === "reload"`) as Promise<boolean>;

/** A key and session made by a tab of their own that then closes (its lock with it): the storage twin tabs start with. */
async function seedIdentity(name: string): Promise<{ k: string; s: string }> {
  const context = await newContext();
  const page = await openChat(context, name, "lobby");
  const seed = (await page.evaluate("({ k: sessionStorage.getItem('chat.secretKey'), s: sessionStorage.getItem('chat.sessionId') })")) as { k: string; s: string };
  await context.close();
  return seed;
}

/** Page code (as text: this file is typechecked without the DOM library) putting the seed in a tab's storage at its first load only. */
const seedOnce = (seed: { k: string; s: string }) => `
  if (sessionStorage.getItem("seeded") === null) {
    sessionStorage.setItem("seeded", "yes");
    sessionStorage.setItem("chat.secretKey", ${JSON.stringify(seed.k)});
    sessionStorage.setItem("chat.sessionId", ${JSON.stringify(seed.s)});
    sessionStorage.setItem("chat.name", "twin");
  }`;

async function dashboard(page: Page): Promise<void> {
  await page.goto(`${stage.broker.url}/dashboard?mesh=${stage.mesh.slug}`);
  await page.fill("#token", ADMIN_TOKEN);
  await page.press("#token", "Enter");
  await page.waitForSelector("#board:not([hidden])", WAIT);
}

describe.skipIf(!enabled)("chat demo pages", () => {
  test("a name entered in the form: the form goes and the room shows; at a phone's width nothing is cut off, a 64-character name included", async () => {
    const long = "W".repeat(64);
    const context = await newContext();
    const other = await openChat(context, "pat", "lobby");
    const page = await (await newContext()).newPage();
    const errors = consoleErrors(page);
    await page.setViewportSize(PHONE);
    await page.goto(`${stage.demo.url}/#lobby`);
    expect(await visible(page, "#compose")).toBe(false);
    await page.fill("#name", long);
    await page.press("#name", "Enter");
    await inRoom(page, "lobby");
    expect({ form: await visible(page, "#signin"), compose: await visible(page, "#compose") }).toEqual({ form: false, compose: true });
    await say(page, "hello from a phone");
    await shows(other, "hello from a phone");
    await page.waitForSelector(`#online li:has-text("pat")`, WAIT);
    expect(await overflow(page)).toBeLessThanOrEqual(0);
    // The long name on the other side, at a phone's width too.
    await other.setViewportSize(PHONE);
    await other.waitForSelector(`#online li:has-text("${long}")`, WAIT);
    expect(await overflow(other)).toBeLessThanOrEqual(0);
    mkdirSync(OUT, { recursive: true });
    await other.screenshot({ path: join(OUT, "chat-phone.png") });
    expect(errors).toEqual([]);
  });

  test("a name the page's backend would refuse is asked again, saying why", async () => {
    const page = await (await newContext()).newPage();
    await page.goto(`${stage.demo.url}/?name=${encodeURIComponent("   ")}#lobby`);
    await page.waitForSelector("#signin:not([hidden])", WAIT);
    await page.goto(`${stage.demo.url}/?name=${"x".repeat(65)}#lobby`);
    await page.waitForSelector("#signin:not([hidden])", WAIT);
    expect(await page.textContent("#signin-error")).toContain("at most 64 characters");
  });

  test("a line from someone who has left is still named, for a newcomer too, by the name first vouched for", async () => {
    const quinn = await openChat(await newContext(), "quinn", "random");
    const pubkey = (await quinn.getAttribute(`#online li:has-text("quinn")`, "data-pubkey"))!;
    await say(quinn, "quinn was here");
    await quinn.close();
    // Gone from the mesh's presences: the newcomer cannot learn the name from them.
    await waitUntil(
      async () => ((await stage.admin.peers(stage.mesh.id)).some((p) => p.pubkey === pubkey) ? undefined : true),
      WAIT.timeout,
      "quinn's presence to end",
    );
    // A token asked for the same key with another name does not rename it.
    await fetch(`${stage.demo.url}/token`, { method: "POST", body: JSON.stringify({ pubkey, name: "the admin" }) });
    const newcomer = await openChat(await newContext(), "rosa", "random");
    await shows(newcomer, "quinn was here");
    // Named by the page's backend, which vouched for the name: quinn is not online to say it.
    await newcomer.waitForSelector(`#messages li:has-text("quinn was here") .who:text-is("quinn")`, WAIT);
  });

  test("a tab opened from another starts with a copy of its storage, yet gets a key of its own: both stay open and get every message", async () => {
    const context = await newContext();
    const first = await openChat(context, "sam", "support");
    const firstKey = await storedKey(first);
    const opened = context.waitForEvent("page", WAIT);
    await first.evaluate("window.open(location.href)");
    const second = await opened;
    await inRoom(second, "support");
    const [a, b] = await Promise.all([first, second].map(storedKey));
    expect(a).toBe(firstKey);
    expect(b).not.toBe(firstKey);
    const { client } = await programPeer("support");
    await client.send("#support", { text: "to both tabs" });
    await shows(first, "to both tabs");
    await shows(second, "to both tabs");
    expect(await first.getAttribute("#connection", "data-state")).toBe("open");
    // Settled by the lock, not by one tab taking the other's session.
    expect(await Promise.all([first, second].map(reloaded))).toEqual([false, false]);
  });

  test("two tabs with the same storage that load at once: the one that gets the session's lock keeps the key, the other makes its own", async () => {
    const seed = await seedIdentity("vic");
    const twins = await newContext();
    await twins.addInitScript(seedOnce(seed));
    const [a, b] = (await Promise.all([twins.newPage(), twins.newPage()])) as [Page, Page];
    await Promise.all([a.goto(`${stage.demo.url}/#lobby`), b.goto(`${stage.demo.url}/#lobby`)]);
    await Promise.all([inRoom(a, "lobby"), inRoom(b, "lobby")]);
    const keys = await Promise.all([a, b].map(storedKey));
    expect({ seedKept: keys.filter((k) => k === seed.k).length, distinct: new Set(keys).size }).toEqual({ seedKept: 1, distinct: 2 });
    const { client } = await programPeer("lobby");
    await client.send("#lobby", { text: "to both twins" });
    await shows(a, "to both twins");
    await shows(b, "to both twins");
    expect(await Promise.all([a, b].map(reloaded))).toEqual([false, false]);
  });

  test("two tabs with the same storage where no lock can be had: the one replaced starts again with a key of its own, and both get every message", async () => {
    const seed = await seedIdentity("yuri");
    const twins = await newContext();
    // As in a browser without Web Locks.
    await twins.addInitScript(`(() => {
      delete Navigator.prototype.locks;
      ${seedOnce(seed)}
    })()`);
    const [a, b] = await Promise.all([twins.newPage(), twins.newPage()]);
    await a.goto(`${stage.demo.url}/#lobby`);
    await inRoom(a, "lobby");
    expect(await a.evaluate(`"locks" in navigator`)).toBe(false);
    const startsAgain = a.waitForEvent("load", WAIT);
    await b.goto(`${stage.demo.url}/#lobby`);
    await inRoom(b, "lobby");
    // b's hello replaced a's session: a loads again with a key of its own.
    await startsAgain;
    await inRoom(a, "lobby");
    expect(await Promise.all([a, b].map(reloaded))).toEqual([true, false]);
    const keys = await Promise.all([a, b].map(storedKey));
    expect(keys[1]).toBe(seed.k);
    expect(keys[0]).not.toBe(seed.k);
    const { client } = await programPeer("lobby");
    await client.send("#lobby", { text: "to both twins again" });
    await shows(a, "to both twins again");
    await shows(b, "to both twins again");
    expect(await Promise.all([a, b].map((p) => p.getAttribute("#connection", "data-state")))).toEqual(["open", "open"]);
  });

  test("a send that fails says why, and the line clears once a message goes out", async () => {
    const page = await openChat(await newContext(), "walt", "support");
    await page.fill("#text", "x".repeat(70_000));
    await page.press("#text", "Enter");
    await page.waitForFunction(`document.getElementById("problem").textContent.includes("too_large") || document.getElementById("problem").textContent.includes("limit")`, undefined, WAIT);
    await page.fill("#text", "a short one");
    await page.press("#text", "Enter");
    await shows(page, "a short one");
    await page.waitForFunction(`document.getElementById("problem").textContent === ""`, undefined, WAIT);
  });

  test("a page whose member is revoked says it is closed for good and why; a message typed then stays in the box, not sent", async () => {
    const page = await openChat(await newContext(), "tess", "lobby");
    const pubkey = await page.getAttribute(`#online li:has-text("tess")`, "data-pubkey");
    await stage.admin.revokeMember(stage.mesh.id, pubkey!);
    await page.waitForSelector('#connection[data-state="closed"]', WAIT);
    expect(await page.textContent("#problem")).toContain("4002");
    await page.fill("#text", "are you there?");
    await page.press("#text", "Enter");
    await page.waitForFunction(`document.getElementById("problem").textContent.startsWith("not sent")`, undefined, WAIT);
    expect(await page.inputValue("#text")).toBe("are you there?");
  });
});

describe.skipIf(!enabled)("dashboard pages", () => {
  test("at a phone's width the board is one column and nothing is cut off", async () => {
    const page = await (await newContext()).newPage();
    const errors = consoleErrors(page);
    await page.setViewportSize(PHONE);
    await dashboard(page);
    await page.waitForSelector("#instances tr", WAIT);
    expect(await overflow(page)).toBeLessThanOrEqual(0);
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: join(OUT, "dashboard-phone.png"), fullPage: true });
    expect(errors).toEqual([]);
  });

  test('what the board shows in grey or color is readable: "offline", an empty table\'s "none", the chart\'s legends (contrast at least 4.5:1)', async () => {
    const page = await (await newContext()).newPage();
    await dashboard(page);
    // Made in the members table (and read at once, before a refresh redraws
    // it): they stand on the board's backgrounds and take its style sheet.
    const offline = `(() => {
      const span = document.createElement("span");
      span.className = "offline";
      span.textContent = "offline";
      document.getElementById("members").insertRow().insertCell().append(span);
      return span;
    })()`;
    const empty = `document.getElementById("members").closest("table").appendChild(document.createElement("tbody"))`;
    expect(await page.evaluate(contrastOf(offline))).toBeGreaterThanOrEqual(4.5);
    expect(await page.evaluate(contrastOf(empty, { pseudo: "::after" }))).toBeGreaterThanOrEqual(4.5);
    // The chart's legends are text in their lines' colors.
    await page.waitForSelector("#chart .legend li", WAIT);
    const contrasts: number[] = [];
    for (let i = 0; i < (await page.locator("#chart .legend li").count()); i++) {
      contrasts.push((await page.evaluate(contrastOf(`document.querySelectorAll("#chart .legend li")[${i}]`))) as number);
    }
    expect(contrasts.length).toBe(2);
    expect(contrasts.filter((c) => c < 4.5)).toEqual([]);
  });

  test("the chart is drawn by the broker's clock: a tab's clock an hour behind or ahead still shows the last ten minutes inside the chart", async () => {
    for (const offset of [-3_600_000, 3_600_000]) {
      const context = await newContext();
      await context.clock.install({ time: Date.now() + offset });
      const page = await context.newPage();
      await dashboard(page);
      // Two samples make a line (the broker samples every HOUSEKEEPING_INTERVAL_MS, 1 s here).
      const points = `[...document.querySelectorAll("#chart polyline")].flatMap((l) => l.getAttribute("points").split(" ").filter((p) => p !== "").map((p) => Number(p.split(",")[0])))`;
      await page.waitForFunction(`${points}.length >= 4`, undefined, WAIT);
      const xs = (await page.evaluate(points)) as number[];
      const [left, right] = (await page.evaluate(`(() => { const [x, , w] = document.querySelector("#chart svg").getAttribute("viewBox").split(" ").map(Number); return [x, x + w]; })()`)) as [number, number];
      expect({ offset, outside: xs.filter((x) => !(x >= left && x <= right)) }).toEqual({ offset, outside: [] });
      await context.close();
    }
  });

  test("Forget token: back to the form with the token and the data gone, and nothing more is asked of the broker", async () => {
    const page = await (await newContext()).newPage();
    await dashboard(page);
    // A refresh on its way when the token is forgotten comes back to nothing.
    const { held, release } = await holdRoute(page, "**/v1/admin/overview");
    await held;
    await page.click("#logout");
    release();
    expect({ login: await visible(page, "#login"), board: await visible(page, "#board"), token: await page.inputValue("#token") }).toEqual({
      login: true,
      board: false,
      token: "",
    });
    const asked: string[] = [];
    page.on("request", (req) => {
      if (req.url().includes("/v1/admin/")) asked.push(req.url());
    });
    // Longer than the page's refresh interval (5 s).
    await page.waitForTimeout(6000);
    expect(asked).toEqual([]);
    expect({ error: await page.textContent("#login-error"), stale: await page.textContent("#stale") }).toEqual({ error: "", stale: "" });
  });

  test("a broker that answers 503 as the page opens: the token is kept and tried again, and the board shows once it answers", async () => {
    const page = await (await newContext()).newPage();
    let refuse = true;
    await page.route("**/v1/admin/overview", (route) =>
      refuse ? route.fulfill({ status: 503, contentType: "application/json", body: '{"error":{"code":"unavailable","message":"the database is unavailable"}}' }) : route.continue(),
    );
    await page.goto(`${stage.broker.url}/dashboard`);
    await page.fill("#token", ADMIN_TOKEN);
    await page.press("#token", "Enter");
    await page.waitForFunction(`document.getElementById("login-error").textContent.includes("the database is unavailable")`, undefined, WAIT);
    expect(await page.evaluate("sessionStorage.getItem('switchboard.adminToken')")).toBe(ADMIN_TOKEN);
    refuse = false;
    await page.waitForSelector("#board:not([hidden])", WAIT);
  });

  test("a token pasted with a character no HTTP header carries (curly quotes) is refused as such, not taken for a broker that cannot be reached", async () => {
    const page = await (await newContext()).newPage();
    await page.goto(`${stage.broker.url}/dashboard`);
    await page.fill("#token", `\u201c${ADMIN_TOKEN}\u201d`);
    await page.press("#token", "Enter");
    await page.waitForFunction(`document.getElementById("login-error").textContent !== ""`, undefined, WAIT);
    expect({
      error: await page.textContent("#login-error"),
      kept: await page.evaluate("sessionStorage.getItem('switchboard.adminToken')"),
      forget: await visible(page, "#logout"),
    }).toEqual({ error: "the token holds a character no HTTP header can carry (“), so it cannot be the admin token", kept: null, forget: false });
  });

  test("a member who joins while the members are being listed again stays shown with its presence", async () => {
    const page = await (await newContext()).newPage();
    await dashboard(page);
    // The next listing is read by the broker now, and its answer held until
    // the newcomer has joined: it does not name the newcomer.
    const { held, release } = await holdRoute(page, `**/v1/admin/meshes/${stage.mesh.id}/members`, { answered: true });
    await held;
    const xena = await openChat(await newContext(), "xena", "lobby");
    const pubkey = (await xena.getAttribute(`#online li:has-text("xena")`, "data-pubkey"))!;
    await page.waitForSelector(`#members tr[data-member="${pubkey}"] [data-status]`, WAIT);
    release();
    // Two refreshes later it is still there, with its presence.
    await page.waitForTimeout(6000);
    expect(await page.isVisible(`#members tr[data-member="${pubkey}"] [data-status]`)).toBe(true);
  });

  test("a revoked member leaves the members table", async () => {
    const page = await (await newContext()).newPage();
    const gone = await openChat(await newContext(), "uma", "lobby");
    const pubkey = (await gone.getAttribute(`#online li:has-text("uma")`, "data-pubkey"))!;
    await dashboard(page);
    await page.waitForSelector(`#members tr[data-member="${pubkey}"]`, WAIT);
    await stage.admin.revokeMember(stage.mesh.id, pubkey);
    await page.waitForSelector(`#members tr[data-member="${pubkey}"]`, { ...WAIT, state: "detached" });
  });

  // Six boards in one browser hold its six HTTP/1.1 connections to the broker with their streams: what else they ask waits, unanswered.
  test("a refresh the broker never answers: within seconds the board says it is not live, instead of waiting on", async () => {
    const page = await (await newContext()).newPage();
    await dashboard(page);
    expect(await page.textContent("#stale")).toBe("");
    await holdRoute(page, "**/v1/admin/overview");
    await page.waitForFunction(`document.getElementById("stale").textContent.startsWith("Not live: the broker did not answer within 10 s")`, undefined, {
      timeout: 30_000,
    });
    expect(await page.getAttribute("#board", "data-stale")).not.toBeNull();
  });

  test("the broker stopped: the board says it is not live and since when; it says nothing once the broker is back", async () => {
    const page = await (await newContext()).newPage();
    await dashboard(page);
    expect(await page.textContent("#stale")).toBe("");
    expect(await stage.broker.stop()).toBe(0);
    await page.waitForFunction(`document.getElementById("stale").textContent.startsWith("Not live")`, undefined, WAIT);
    expect(await page.getAttribute("#board", "data-stale")).not.toBeNull();
    stage.broker = await spawnBroker(stage.brokerEnv);
    await page.waitForFunction(`document.getElementById("stale").textContent === ""`, undefined, { timeout: 30_000 });
  });
});
