// The chat demo and the dashboard in a real Chromium against a real broker:
// rooms, typing and presence between two users; reload hydration and a second
// tab; a broker restart; a token that expires; the live dashboard (with a
// screenshot under bench/out/); and an origin CORS_ORIGINS does not list.
// (pages.test.ts: how the pages look and fail.)
import { describe, expect, test } from "bun:test";
import { newIdentity, REPO_ROOT, spawnBroker } from "@switchboard/testkit";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Request as PlaywrightRequest } from "playwright-core";
import {
  ADMIN_TOKEN,
  allShown,
  connected,
  enabled,
  holdRoute,
  httpService,
  inRoom,
  messageIds,
  newContext,
  openChat,
  programPeer,
  recordStates,
  recordStatesFromLoad,
  say,
  shows,
  stage,
  storedKey,
  texts,
  useStage,
  WAIT,
} from "./stage.ts";

useStage();

describe.skipIf(!enabled)("chat demo in Chromium", () => {
  test("two users in a room: a message typed in one appears in the other, typing shows and clears, presence shows both", async () => {
    const alice = await openChat(await newContext(), "alice");
    const bob = await openChat(await newContext(), "bob");
    for (const page of [alice, bob]) {
      await page.waitForFunction(`document.querySelectorAll("#online li").length === 2`, undefined, WAIT);
      const online = (await page.evaluate(`[...document.querySelectorAll("#online li")].map((li) => li.firstChild.textContent)`)) as string[];
      expect(online.sort()).toEqual(["alice", "bob"]);
    }
    await alice.type("#text", "hel");
    await bob.waitForFunction(`document.getElementById("typing").textContent === "alice is typing…"`, undefined, WAIT);
    await alice.press("#text", "l");
    await alice.fill("#text", "hello bob");
    await alice.press("#text", "Enter");
    await shows(bob, "hello bob");
    await bob.waitForFunction(`document.getElementById("typing").textContent === ""`, undefined, WAIT);
    await say(bob, "hi alice");
    await shows(alice, "hi alice");
  });

  test("a reload mid-conversation hydrates without duplicates or gaps; a second tab of the same user gets the same messages", async () => {
    const alice = await openChat(await newContext(), "alice", "support");
    const bobContext = await newContext();
    const bob = await openChat(bobContext, "bob", "support");
    for (const n of [1, 2, 3]) await say(alice, `support ${n}`);
    await shows(bob, "support 3");
    const bobKey = await storedKey(bob);
    const reload = bob.reload();
    await say(alice, "support 4 during the reload");
    await reload;
    await inRoom(bob, "support");
    // The same member again: the page's lock on its session went with the old page.
    expect(await storedKey(bob)).toBe(bobKey);
    await say(alice, "support 5");
    await shows(bob, "support 5");
    const expected = ["support 1", "support 2", "support 3", "support 4 during the reload", "support 5"];
    expect(await texts(bob)).toEqual(expected);
    const ids = await messageIds(bob);
    expect(new Set(ids).size).toBe(ids.length);

    const secondTab = await openChat(bobContext, "bob", "support");
    await shows(secondTab, "support 5");
    await say(alice, "support 6");
    await shows(secondTab, "support 6");
    await shows(bob, "support 6");
    expect(await texts(secondTab)).toEqual([...expected, "support 6"]);
    expect(await texts(bob)).toEqual([...expected, "support 6"]);
  });

  test("a line is named as the broker knows its sender, never by a name its message claims", async () => {
    const page = await openChat(await newContext(), "frank", "support");
    const { client: program, identity } = await programPeer("support");
    await page.waitForSelector(`#online li[data-pubkey="${identity.publicKey}"]`, WAIT);
    await program.send("#support", { text: "this is alice speaking", name: "alice" });
    const line = await shows(page, "this is alice speaking");
    expect(await (await line!.$(".who"))!.textContent()).toBe("program");
  });

  test("each window asks for its own name: a second one of the same browser is not signed in as the first", async () => {
    const context = await newContext();
    const first = await context.newPage();
    await first.goto(`${stage.demo.url}/#lobby`);
    await first.fill("#name", "gina");
    await first.press("#name", "Enter");
    await inRoom(first, "lobby");
    expect(await first.textContent("#me")).toBe("gina");
    const second = await context.newPage();
    await second.goto(`${stage.demo.url}/#lobby`);
    await second.waitForSelector("#signin:not([hidden])", WAIT);
  });

  test("the broker restarts: the indicator goes reconnecting then open, and a message sent meanwhile over the HTTP API arrives", async () => {
    const page = await openChat(await newContext(), "carol", "random");
    const service = await httpService();
    const states = await recordStates(page);
    expect(await stage.broker.stop()).toBe(0);
    await page.waitForSelector('#connection[data-state="reconnecting"]', WAIT);
    stage.broker = await spawnBroker(stage.brokerEnv);
    // Sent as soon as the broker is back, whether or not the page has reconnected yet.
    await service.send("#random", { text: "sent while carol was away", name: "service" });
    await connected(page);
    await shows(page, "sent while carol was away");
    const seen = await states();
    expect(seen.indexOf("reconnecting")).toBeGreaterThanOrEqual(0);
    expect(seen.lastIndexOf("open")).toBeGreaterThan(seen.indexOf("reconnecting"));
  });

  test("a token that expires closes with 4001 and the page reconnects with a fresh one without losing a message", async () => {
    // Watched from before the page loads: on a slow machine its first token
    // may run out while the page is still opening.
    const page = await (await newContext()).newPage();
    let tokenRequests = 0;
    page.on("request", (req: PlaywrightRequest) => {
      if (req.url().endsWith("/token")) tokenRequests++;
    });
    const states = await recordStatesFromLoad(page);
    await page.goto(`${stage.shortDemo.url}/?name=dave#lobby`);
    await inRoom(page, "lobby");
    const { client: program } = await programPeer("lobby");
    const seenBefore = (await states()).length;
    /** States since the sending began: an expiry among them is one the messages span. */
    const since = async () => (await states()).slice(seenBefore);
    const reconnected = (s: string[]) => s.includes("reconnecting") && s.lastIndexOf("open") > s.indexOf("reconnecting");
    const sent: string[] = [];
    // Messages keep coming across a token's expiry and the reconnect.
    const until = Date.now() + 60_000;
    while (!reconnected(await since())) {
      if (Date.now() > until) throw new Error(`no reconnect within 60 s; states ${JSON.stringify(await states())}, ${tokenRequests} token requests`);
      const text = `tick ${sent.length}`;
      await program.send("#lobby", { text, name: "program" });
      sent.push(text);
      await Bun.sleep(200);
    }
    await allShown(page, sent);
    expect(tokenRequests).toBeGreaterThanOrEqual(2);
    expect(stage.broker.logs.some((l) => l.msg === "ws close" && l.code === 4001)).toBe(true);
  });

  test("an origin not in CORS_ORIGINS is refused", async () => {
    const context = await newContext();
    const listed = await context.newPage();
    await listed.goto(`${stage.demo.url}/health-check-page`);
    const probe = (url: string) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(url);
        ws.onopen = () => {
          ws.close();
          resolve("open");
        };
        ws.onerror = () => resolve("refused");
      });
    const wsUrl = `${stage.broker.wsUrl}`;
    expect(await listed.evaluate(probe, wsUrl)).toBe("open");
    expect(await listed.evaluate((u: string) => fetch(u).then((r) => r.status, () => "blocked"), `${stage.broker.url}/health`)).toBe(200);

    const stranger = await context.newPage();
    await stranger.goto(stage.demo.url.replace("127.0.0.1", "localhost") + "/health-check-page");
    expect(await stranger.evaluate(probe, wsUrl)).toBe("refused");
    expect(await stranger.evaluate((u: string) => fetch(u).then((r) => r.status, () => "blocked"), `${stage.broker.url}/health`)).toBe("blocked");
  });
});

describe.skipIf(!enabled)("dashboard in Chromium", () => {
  test("another mesh chosen while the first one's members are on their way: only its own members are shown", async () => {
    const other = await stage.admin.createMesh(`other-${crypto.randomUUID().slice(0, 8)}`);
    const lone = await newIdentity();
    await stage.admin.addMember(other.id, { pubkey: lone.publicKey, displayName: "only in the other mesh" });
    const page = await (await newContext()).newPage();
    const { held, release } = await holdRoute(page, `**/v1/admin/meshes/${stage.mesh.id}/members`);
    const cutOff = page.waitForEvent("requestfailed", { predicate: (r) => r.url().endsWith(`/${stage.mesh.id}/members`), timeout: WAIT.timeout }).catch(() => null);
    await page.goto(`${stage.broker.url}/dashboard?mesh=${stage.mesh.slug}`);
    await page.fill("#token", ADMIN_TOKEN);
    await page.press("#token", "Enter");
    await page.waitForSelector(`#mesh option[value="${other.id}"]`, { ...WAIT, state: "attached" });
    // The first mesh's members are on their way when the other is chosen.
    await held;
    await page.selectOption("#mesh", other.id);
    await page.waitForSelector(`#members tr[data-member="${lone.publicKey}"]`, WAIT);
    release();
    // The switch cut the first mesh's request off: no answer of it can come to be shown.
    expect(await cutOff).not.toBeNull();
    const shown = (await page.evaluate(`[...document.querySelectorAll("#members tr")].map((tr) => tr.dataset.member)`)) as string[];
    expect(shown).toEqual([lone.publicKey]);
  });

  test("live presences, and a status change from a hook; a screenshot for people", async () => {
    const erin = await openChat(await newContext(), "erin", "lobby");
    const erinPubkey = (await erin.getAttribute("#online li", "data-pubkey")) ?? "";
    const { client: program, identity } = await programPeer("lobby");
    const hookToken = await stage.admin.createHookToken(stage.mesh.id, identity.publicKey);

    const page = await (await newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    await page.goto(`${stage.broker.url}/dashboard?mesh=${stage.mesh.slug}`);
    await page.fill("#token", ADMIN_TOKEN);
    await page.press("#token", "Enter");
    await page.waitForSelector(`#members [data-presence="${program.presenceId}"][data-status="idle"]`, WAIT);
    expect(erinPubkey).not.toBe("");
    await page.waitForSelector(`#members tr[data-member="${erinPubkey}"] [data-status]`, WAIT);

    const hookedAt = Date.now();
    const hook = await fetch(`${stage.broker.url}/hook/set-status`, {
      method: "POST",
      headers: { authorization: `Bearer ${hookToken}`, "content-type": "application/json" },
      body: JSON.stringify({ hook_event_name: "UserPromptSubmit", cwd: process.cwd(), session_id: "none" }),
    });
    expect(hook.status).toBe(200);
    await page.waitForSelector(`#members [data-presence="${program.presenceId}"][data-status="working"]`, WAIT);
    const shownAfterMs = Date.now() - hookedAt;
    console.log(`dashboard showed the hook's status after ${shownAfterMs} ms`);

    await page.waitForSelector('#rooms tr[data-room$=" #lobby"] .connections', WAIT);
    // Under a hundred rooms: all of them listed, and no word of more.
    expect(await page.isHidden("#rooms-more")).toBe(true);
    await page.waitForSelector("#instances tr", WAIT);
    const out = join(REPO_ROOT, "bench", "out");
    mkdirSync(out, { recursive: true });
    await page.screenshot({ path: join(out, "dashboard.png"), fullPage: true });
  });
});
