// What the browser tests stand on: a broker, the chat demo in front of it
// (once with tokens of an hour, once of 4 s), Chromium, and the steps a
// person takes on the demo's page.
import { afterAll, afterEach, beforeAll } from "bun:test";
import { HttpSender, SwitchboardClient } from "@switchboard/client";
import {
  AdminClient,
  freePort,
  freshBackend,
  newIdentity,
  spawnBroker,
  type BrokerProcess,
  type TestBackend,
  type TestIdentity,
} from "@switchboard/testkit";
import { chromiumOrSkip, launchChromium } from "@switchboard/testkit/chromium";
import type { Browser, BrowserContext, BrowserContextOptions, Page } from "playwright-core";
import { startDemo } from "../src/server.ts";

export const ADMIN_TOKEN = "admin-secret-0123456789abcdef";
export const JWT_SECRET = "jwt-secret-for-the-chat-demo-0123456789";
export const WAIT = { timeout: 20_000 };

export const enabled = chromiumOrSkip();

type Demo = Awaited<ReturnType<typeof startDemo>>;

/** What a test file's useStage() started; set before its tests run. */
export const stage = {} as {
  backend: TestBackend;
  broker: BrokerProcess;
  brokerEnv: Record<string, string>;
  admin: AdminClient;
  mesh: { id: string; slug: string };
  demo: Demo;
  /** The same demo with tokens of 4 s. */
  shortDemo: Demo;
  browser: Browser;
};
const contexts: BrowserContext[] = [];
const peers: SwitchboardClient[] = [];

/** A broker, the demo in front of it (twice), and Chromium, for the calling test file. */
export function useStage(): void {
  beforeAll(async () => {
    if (!enabled) return;
    await start();
  });
  // A test's tabs and peers end with it: tabs left open would go on
  // reconnecting, polling and drawing through every later test of the file.
  afterEach(async () => {
    if (!enabled) return;
    await closeTabsAndPeers();
  });
  afterAll(async () => {
    if (!enabled) return;
    await closeTabsAndPeers();
    await stage.browser?.close();
    await stage.demo?.stop();
    await stage.shortDemo?.stop();
    await stage.broker?.stop();
    await stage.backend?.dispose();
  });
}

async function start(): Promise<void> {
  const backend = (stage.backend = await freshBackend());
  const [brokerPort, demoPort, shortPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const brokerEnv = (stage.brokerEnv = {
    ...backend.env,
    ADMIN_TOKEN,
    JWT_SECRET,
    BROKER_PORT: String(brokerPort),
    CORS_ORIGINS: `http://127.0.0.1:${demoPort},http://127.0.0.1:${shortPort}`,
    HOUSEKEEPING_INTERVAL_MS: "1000",
  });
  const broker = (stage.broker = await spawnBroker(brokerEnv));
  const admin = (stage.admin = new AdminClient(broker.url, ADMIN_TOKEN));
  const mesh = (stage.mesh = await admin.createMesh(`chat-${crypto.randomUUID().slice(0, 8)}`));
  const common = { hostname: "127.0.0.1", brokerUrl: broker.url, jwtSecret: JWT_SECRET, mesh: mesh.slug };
  stage.demo = await startDemo({ ...common, port: demoPort, tokenSeconds: 3600 });
  stage.shortDemo = await startDemo({ ...common, port: shortPort, tokenSeconds: 4 });
  stage.browser = await launchChromium();
}

async function closeTabsAndPeers(): Promise<void> {
  // Every one, whatever another's close does: a test that passed is not failed by its cleanup.
  await Promise.allSettled(peers.splice(0).map((p) => p.close()));
  await Promise.allSettled(contexts.splice(0).map((c) => c.close()));
}

/** A browser context (its own storage, as another browser's) that ends with the test. */
export async function newContext(options?: BrowserContextOptions): Promise<BrowserContext> {
  const context = await stage.browser.newContext(options);
  contexts.push(context);
  return context;
}

/** A chat tab of `name` in `room`, once it is in the room (see `inRoom`). */
export async function openChat(context: BrowserContext, name: string, room = "lobby", base = stage.demo.url): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${base}/?name=${name}#${room}`);
  await inRoom(page, room);
  return page;
}

export const connected = (page: Page) => page.waitForSelector('#connection[data-state="open"]', WAIT);

/**
 * The tab's socket is open and it has joined the room and loaded its history.
 * An open socket alone is not enough: typing sent before the join never
 * reaches the tab, and the history may still be on its way.
 */
export async function inRoom(page: Page, room: string): Promise<void> {
  await connected(page);
  await page.waitForSelector(`#chat[data-joined="#${room}"]`, WAIT);
}

// Page code as text: this file is typechecked without the DOM library.
const RECORD_STATES = `(() => {
  window.states = [];
  new MutationObserver((records) => {
    for (const r of records) if (r.target.id === "connection") window.states.push(r.target.dataset.state);
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-state"] });
})()`;

/** Every connection state the page's indicator shows from now on. */
export async function recordStates(page: Page): Promise<() => Promise<string[]>> {
  await page.evaluate(RECORD_STATES);
  return () => page.evaluate("window.states") as Promise<string[]>;
}

/**
 * Every connection state the page's indicator shows from its first load on,
 * for a page not yet opened: what happens while it loads is recorded too.
 */
export async function recordStatesFromLoad(page: Page): Promise<() => Promise<string[]>> {
  await page.addInitScript(RECORD_STATES);
  return () => page.evaluate("window.states") as Promise<string[]>;
}

/** The key the tab keeps in its sessionStorage: which member it is. */
export const storedKey = (page: Page) => page.evaluate("sessionStorage.getItem('chat.secretKey')") as Promise<string>;

export const texts = (page: Page) => page.locator("#messages li .text").allTextContents();
export const messageIds = (page: Page) => page.evaluate(`[...document.querySelectorAll("#messages li")].map((li) => li.dataset.id)`) as Promise<string[]>;

export async function say(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  // The line shows at once, pending; the broker has it once it is marked sent.
  await page.waitForSelector(`#messages li[data-state="sent"]:has-text("${text}")`, WAIT);
}

/** Waits until each of `wanted` is a line's whole text; names the missing ones if some never come. */
export async function allShown(page: Page, wanted: string[]): Promise<void> {
  const missing = async () => {
    const shown = new Set(await texts(page));
    return wanted.filter((t) => !shown.has(t));
  };
  // Page code as text: this file is typechecked without the DOM library.
  const check = `(() => {
    const shown = new Set([...document.querySelectorAll("#messages li .text")].map((e) => e.textContent));
    return ${JSON.stringify(wanted)}.every((t) => shown.has(t));
  })()`;
  await page
    .waitForFunction(check, undefined, WAIT)
    .catch(async (error: unknown) => {
      throw new Error(`never shown: ${JSON.stringify(await missing())} (${String(error)})`);
    });
}

export const shows = (page: Page, text: string) => page.waitForSelector(`#messages li:has-text("${text}")`, WAIT);

/** A program on the mesh (enrolled, signed hello) in a room: the sender of the tests that need one. */
export async function programPeer(room: string): Promise<{ client: SwitchboardClient; identity: TestIdentity }> {
  const identity = await newIdentity();
  await stage.admin.addMember(stage.mesh.id, { pubkey: identity.publicKey, displayName: "program" });
  const client = await SwitchboardClient.connect({ url: stage.broker.url, meshId: stage.mesh.id, secretKey: identity.secretKey, reconnect: { minDelayMs: 100, maxDelayMs: 500 } });
  await client.join(room);
  peers.push(client);
  return { client, identity };
}

/** A service on the mesh that has no socket: it sends over the HTTP API with an API token. */
export async function httpService(): Promise<HttpSender> {
  const identity = await newIdentity();
  const member = await stage.admin.addMember(stage.mesh.id, { pubkey: identity.publicKey, displayName: "service" });
  return HttpSender.create({ url: stage.broker.url, token: await stage.admin.createApiToken(stage.mesh.id, member.id) });
}

/**
 * Holds the next request to `pattern` (and those after it) until release():
 * before it reaches the broker, or — `answered` — once the broker has
 * answered it, so that what it says is older than what happens meanwhile.
 */
export async function holdRoute(page: Page, pattern: string, options: { answered?: boolean } = {}) {
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  let holding = () => {};
  const held = new Promise<void>((resolve) => (holding = resolve));
  await page.route(pattern, async (route) => {
    // A broker that is away (a later test stops it) fails the request, as it would unrouted.
    const answer = options.answered ? await route.fetch().catch(() => null) : undefined;
    if (answer === null) return void (await route.abort().catch(() => {}));
    holding();
    await released;
    await (answer ? route.fulfill({ response: answer }) : route.continue()).catch(() => {});
  });
  return { held, release };
}

/**
 * Page code (as text: these files are typechecked without the DOM library):
 * the WCAG contrast ratio of the text of the element `element` (page code
 * naming it), or of its `pseudo` element, against the first opaque
 * background behind it.
 */
export const contrastOf = (element: string, { pseudo = null }: { pseudo?: "::after" | null } = {}) => `(() => {
  const rgb = (css) => css.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const lin = (c) => (c / 255 <= 0.03928 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4);
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const target = ${element};
  let node = target;
  let background = [255, 255, 255];
  while (node) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length === 3 || c[3] === 1) { background = c.slice(0, 3); break; }
    node = node.parentElement;
  }
  const [a, b] = [luminance(rgb(getComputedStyle(target, ${JSON.stringify(pseudo)}).color)), luminance(background)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
})()`;
