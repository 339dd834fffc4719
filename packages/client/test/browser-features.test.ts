// The SDK's browser features against a real broker, run in Bun: JWT connect
// with a token source (asked again after 4001), history pages (cut by size
// too), the presence
// roster, typing indicators and connectionState. The same code runs in
// Chromium in apps/chat-demo/test.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { useTestBroker, waitUntil } from "@switchboard/testkit";
import { SignJWT } from "jose";
import { generateKeypair, HttpSender, SwitchboardClient, type ConnectionState, type TypingInfo } from "../src/index.ts";
import { controllableWebSocket } from "./support.ts";

const JWT_SECRET = "jwt-secret-for-tests-0123456789abcdef";

let meshId: string;
const clients: SwitchboardClient[] = [];

const broker = useTestBroker({ JWT_SECRET });

beforeAll(async () => {
  meshId = (await broker.admin.createMesh(`web-${crypto.randomUUID().slice(0, 8)}`)).id;
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

/** A token source as a page's backend would be: name and lifetime chosen per test. */
function tokenSource(name: string, lifetimeSeconds = 3600) {
  const issued: number[] = [];
  const source = async ({ meshId: mesh, publicKey }: { meshId: string; publicKey: string }) => {
    const exp = Math.floor(Date.now() / 1000) + lifetimeSeconds;
    issued.push(exp);
    return new SignJWT({ mesh, pubkey: publicKey, name, exp }).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(JWT_SECRET));
  };
  return { source, issued };
}

async function browserClient(name: string, lifetimeSeconds?: number, WebSocketClass?: typeof WebSocket) {
  const { secretKey } = await generateKeypair();
  const tokens = tokenSource(name, lifetimeSeconds);
  const states: ConnectionState[] = [];
  const client = await SwitchboardClient.start({
    url: broker.url,
    meshId,
    secretKey,
    token: tokens.source,
    displayName: name,
    reconnect: { minDelayMs: 50, maxDelayMs: 200 },
    ...(WebSocketClass === undefined ? {} : { WebSocket: WebSocketClass }),
  });
  client.on("connectionState", (s) => states.push(s));
  clients.push(client);
  return { client, tokens, states };
}

describe("browser features of the SDK", () => {
  test("JWT connect, history hydration, presence roster and typing", async () => {
    const ann = await browserClient("ann");
    const ben = await browserClient("ben");
    await ann.client.join("lobby");
    await ben.client.join("lobby");
    expect(ann.client.connectionState).toBe("open");

    await ben.client.subscribePresence();
    await waitUntil(() => ben.client.presences.length === 2, 5000, "both presences");
    expect(ben.client.presences.map((p) => p.displayName).sort()).toEqual(["ann", "ben"]);

    const sent = [];
    for (let i = 0; i < 5; i++) sent.push((await ann.client.send("#lobby", { text: `hello ${i}` })).messageId);
    const page = await ben.client.history("lobby", { limit: 3 });
    expect(page.messages.map((m) => m.payload)).toEqual([{ text: "hello 2" }, { text: "hello 3" }, { text: "hello 4" }]);
    expect(page.before).toBe(sent[2]!);
    const older = await ben.client.history("#lobby", { limit: 3, before: page.before ?? undefined });
    expect(older.messages.map((m) => m.messageId)).toEqual(sent.slice(0, 2));
    expect(older.before).toBeNull();

    const typing: TypingInfo[] = [];
    ben.client.on("typing", (t) => typing.push(t));
    const messages: unknown[] = [];
    ben.client.on("message", (m) => messages.push(m.payload));
    await ann.client.setTyping("lobby");
    await waitUntil(() => typing.length === 1, 5000, "typing");
    await ann.client.setTyping("lobby", false);
    await ann.client.send("#lobby", { text: "done" });
    await waitUntil(() => messages.length > 0 && typing.length === 2, 5000, "the message after typing");
    expect(typing).toEqual([
      { channel: "#lobby", senderPubkey: ann.client.publicKey, typing: true },
      { channel: "#lobby", senderPubkey: ann.client.publicKey, typing: false },
    ]);
    expect(messages.filter((m) => JSON.stringify(m).includes("typing"))).toEqual([]);

    await ann.client.close();
    await waitUntil(() => ben.client.presences.length === 1, 5000, "ann leaving");
    expect(ann.states.at(-1)).toBe("closed");
  });

  test("history of large messages: the broker ends its pages by size, and before walks back to the start", async () => {
    const ann = await browserClient("ann");
    await ann.client.join("attic");
    const sent: string[] = [];
    // Each about 60 KB sealed: the broker's pages end near a megabyte, well short of the limit.
    for (let i = 0; i < 20; i++) sent.push((await ann.client.send("#attic", { text: `${i}`.padEnd(45_000, ".") })).messageId);
    const walked: string[] = [];
    let before: string | undefined;
    let pages = 0;
    do {
      const page = await ann.client.history("attic", { limit: 200, ...(before === undefined ? {} : { before }) });
      walked.unshift(...page.messages.map((m) => m.messageId));
      before = page.before ?? undefined;
      pages++;
    } while (before !== undefined && pages < 10);
    expect(pages).toBe(2);
    expect(walked).toEqual(sent);
  });

  test("a token that expires: close 4001, the token source is asked again, nothing sent meanwhile is lost", async () => {
    const short = await browserClient("short-lived", 2);
    const sender = await browserClient("sender");
    await short.client.join("expiry");
    await sender.client.join("expiry");
    const received: string[] = [];
    short.client.on("message", (m) => received.push((m.payload as { n: string }).n));
    const closes: number[] = [];
    short.client.on("close", (c) => closes.push(c.code));
    const issuedBefore = short.tokens.issued.length;
    let n = 0;
    while (!closes.includes(4001)) {
      await sender.client.send("#expiry", { n: `m${n++}` });
      await Bun.sleep(50);
    }
    await waitUntil(() => short.client.connectionState === "open" && short.tokens.issued.length > issuedBefore, 10_000, "a reconnect with a fresh token");
    await sender.client.send("#expiry", { n: "after" });
    const expected = [...Array.from({ length: n }, (_, i) => `m${i}`), "after"];
    await waitUntil(() => received.length >= expected.length, 10_000, "every message");
    expect(received).toEqual(expected);
    expect(short.states).toContain("reconnecting");
  });

  test("a client closed while its token source answers sends no hello: the session opened since keeps its socket", async () => {
    const { secretKey } = await generateKeypair();
    const { source } = tokenSource("slow");
    const sessionId = `tab-${crypto.randomUUID()}`;
    let asked = false;
    let answered = false;
    let answer = () => {};
    const gate = new Promise<void>((resolve) => (answer = resolve));
    const slow = async (request: { meshId: string; publicKey: string }) => {
      asked = true;
      await gate;
      const token = await source(request);
      answered = true;
      return token;
    };
    // The sockets the first client opens: none, since it is closed before its token comes.
    let opened = 0;
    const CountedWebSocket = new Proxy(WebSocket, {
      construct(target, args: ConstructorParameters<typeof WebSocket>) {
        opened++;
        return new target(...args);
      },
    });
    const base = { url: broker.url, meshId, secretKey, sessionId, reconnect: { minDelayMs: 50, maxDelayMs: 200 } };
    const gone = await SwitchboardClient.start({ ...base, token: slow, WebSocket: CountedWebSocket });
    await waitUntil(() => asked, 5000, "the token source asked");
    const closing = gone.close();
    // The page opens the session again at once, as a reload would.
    const again = await SwitchboardClient.connect({ ...base, token: source });
    clients.push(again);
    const closes: number[] = [];
    again.on("close", (c) => closes.push(c.code));
    answer();
    await closing;
    await waitUntil(() => answered, 5000, "the first client's token");
    // From the token to the socket is one run of microtasks: past a timer, a hello would be on its way.
    await Bun.sleep(0);
    expect(opened).toBe(0);
    expect(closes).toEqual([]);
    expect(again.connectionState).toBe("open");
    expect(gone.connectionState).toBe("closed");
  });

  test("a page that listens for typing and not for messages hears the typing; the messages wait for a message listener, unacked", async () => {
    const ann = await browserClient("ann");
    const ben = await browserClient("ben");
    await ann.client.join("nook");
    await ben.client.join("nook");
    const typing: TypingInfo[] = [];
    ben.client.on("typing", (t) => typing.push(t));
    await ann.client.send("#nook", { text: "before anyone listened" });
    await ann.client.setTyping("nook");
    await waitUntil(() => typing.length === 1, 5000, "the typing");
    expect(typing).toEqual([{ channel: "#nook", senderPubkey: ann.client.publicKey, typing: true }]);
    const messages: unknown[] = [];
    ben.client.on("message", (m) => messages.push(m.payload));
    await waitUntil(() => messages.length === 1, 5000, "the message kept for the listener");
    expect(messages).toEqual([{ text: "before anyone listened" }]);
  });

  test("a presence whose status changed while the socket was down is told as status after the reconnect, not as joined again", async () => {
    const control = controllableWebSocket();
    const ben = await browserClient("ben", undefined, control.WebSocket);
    const cat = await browserClient("cat");
    await waitUntil(() => ben.client.connected && cat.client.connected, 5000, "both connected");
    await ben.client.subscribePresence();
    const catId = cat.client.presenceId;
    await waitUntil(() => ben.client.presences.some((p) => p.presenceId === catId), 5000, "cat in the roster");
    const seen: string[] = [];
    ben.client.on("presence", (e) => {
      if (e.presenceId === catId) seen.push(`${e.event} ${e.status}`);
    });
    let release = () => {};
    control.holdHellos = new Promise<void>((resolve) => (release = resolve));
    control.sockets.at(-1)!.close();
    await waitUntil(() => ben.client.connectionState === "reconnecting", 5000, "ben reconnecting");
    await cat.client.setStatus("working");
    release();
    control.holdHellos = null;
    await waitUntil(() => ben.client.presences.find((p) => p.presenceId === catId)?.status === "working", 5000, "cat working in the roster");
    expect(seen).toEqual(["status working"]);
  });

  test("typing said while the socket is down is not written after the reconnect: it would show a typing long past", async () => {
    const control = controllableWebSocket();
    const ann = await browserClient("ann", undefined, control.WebSocket);
    const ben = await browserClient("ben");
    await waitUntil(() => ann.client.connected && ben.client.connected, 5000, "both connected");
    await ann.client.join("den");
    await ben.client.join("den");
    const typing: TypingInfo[] = [];
    const messages: unknown[] = [];
    ben.client.on("typing", (t) => typing.push(t));
    ben.client.on("message", (m) => messages.push(m.payload));
    let release = () => {};
    control.holdHellos = new Promise<void>((resolve) => (release = resolve));
    control.sockets.at(-1)!.close();
    await waitUntil(() => ann.client.connectionState === "reconnecting", 5000, "ann reconnecting");
    // Not awaited: written once reconnected, it would settle only then.
    const said = ann.client.setTyping("den");
    release();
    control.holdHellos = null;
    await waitUntil(() => ann.client.connected, 5000, "ann back");
    await said;
    await ann.client.send("#den", { text: "back" });
    await waitUntil(() => messages.length === 1, 5000, "the message after the reconnect");
    expect(typing).toEqual([]);
  });

  test("a stored message whose payload looks like a typing signal is a message, not a typing", async () => {
    const ann = await browserClient("ann");
    const ben = await browserClient("ben");
    await ann.client.join("loft");
    await ben.client.join("loft");
    const typing: TypingInfo[] = [];
    const messages: unknown[] = [];
    ben.client.on("typing", (t) => typing.push(t));
    ben.client.on("message", (m) => messages.push(m.payload));
    await ann.client.send("#loft", { "switchboard.typing": true });
    await ann.client.setTyping("loft");
    await waitUntil(() => typing.length === 1 && messages.length === 1, 5000, "the typing and the message");
    expect(messages).toEqual([{ "switchboard.typing": true }]);
    expect(typing).toEqual([{ channel: "#loft", senderPubkey: ann.client.publicKey, typing: true }]);
  });

  test("HttpSender in a page: it calls fetch as a function, as a browser's fetch demands (called as a method of another object it throws)", async () => {
    const ann = await browserClient("ann");
    // Its JWT hello enrolls it: before that the broker knows no member with its key.
    await waitUntil(() => ann.client.connected, 5000, "ann connected");
    const member = (await broker.admin.addMember(meshId, { pubkey: (await generateKeypair()).publicKey, displayName: "web-app" })).id;
    const token = await broker.admin.createApiToken(meshId, member);
    const received: unknown[] = [];
    ann.client.on("message", (m) => received.push(m.payload));
    // A browser's fetch is an operation of the window: called with another
    // object as this, it throws "Illegal invocation". Bun's does not check.
    const platformFetch = globalThis.fetch;
    const windowFetch = function (this: unknown, input: string | URL | Request, init?: RequestInit) {
      if (this !== undefined && this !== globalThis) return Promise.reject(new TypeError("Failed to execute 'fetch' on 'Window': Illegal invocation"));
      return platformFetch(input, init);
    };
    globalThis.fetch = Object.assign(windowFetch, { preconnect: platformFetch.preconnect });
    try {
      for (const sender of [await HttpSender.create({ url: broker.url, token }), await HttpSender.create({ url: broker.url, token, fetch: globalThis.fetch })]) {
        const sent = await sender.send(ann.client.publicKey, { text: "from the page" }, { encrypt: false });
        expect(sent.duplicate).toBe(false);
      }
    } finally {
      globalThis.fetch = platformFetch;
    }
    await waitUntil(() => received.length === 2, 5000, "both messages");
    expect(received).toEqual([{ text: "from the page" }, { text: "from the page" }]);
  });
});
