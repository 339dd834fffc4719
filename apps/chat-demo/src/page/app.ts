// The chat page: rooms are channels, each hydrated from history when it is
// opened (and after every reconnect), then kept live by pushes. Typing is an
// ephemeral channel message, the online list comes from presence events, and
// the header shows the connection state. Each tab is its own member (its key
// lives in sessionStorage, so a reload keeps it): every tab gets every message.
import { generateKeypair, SwitchboardClient, type Message } from "@switchboard/client";

const ROOMS = ["lobby", "support", "random"];
const TYPING_REPEAT_MS = 3000;

interface Line {
  id: string;
  /** The sender's pubkey: its name is looked up when the line is drawn. */
  sender: string;
  text: string;
  createdAt: string;
  order: number;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const el = (tag: string, attrs: Record<string, string>, ...children: Array<Node | string>) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
};

async function identity(): Promise<{ secretKey: string; sessionId: string }> {
  let secretKey = sessionStorage.getItem("chat.secretKey");
  if (secretKey === null) {
    secretKey = (await generateKeypair()).secretKey;
    sessionStorage.setItem("chat.secretKey", secretKey);
  }
  let sessionId = sessionStorage.getItem("chat.sessionId");
  if (sessionId === null) {
    sessionId = crypto.randomUUID();
    sessionStorage.setItem("chat.sessionId", sessionId);
  }
  return { secretKey, sessionId };
}

function askName(): Promise<string> {
  // Per tab, as the key is: a second window asks for its own name.
  const given = new URLSearchParams(location.search).get("name") ?? sessionStorage.getItem("chat.name");
  if (given) return Promise.resolve(given);
  $("signin").hidden = false;
  return new Promise((resolve) =>
    $("signin").addEventListener("submit", (event) => {
      event.preventDefault();
      const name = $<HTMLInputElement>("name").value.trim();
      sessionStorage.setItem("chat.name", name);
      $("signin").hidden = true;
      resolve(name);
    }),
  );
}

async function main(): Promise<void> {
  const config = (await (await fetch("/config.json")).json()) as { brokerUrl: string; mesh: string };
  const name = await askName();
  $("me").textContent = name;
  const { secretKey, sessionId } = await identity();
  const client = await SwitchboardClient.start({
    url: config.brokerUrl,
    meshId: config.mesh,
    secretKey,
    sessionId,
    displayName: name,
    reconnect: { minDelayMs: 300, maxDelayMs: 5000 },
    // The page's backend vouches for this tab's key; asked again on every reconnect.
    token: async ({ publicKey }) => {
      const res = await fetch("/token", { method: "POST", body: JSON.stringify({ pubkey: publicKey, name }) });
      return ((await res.json()) as { token: string }).token;
    },
  });

  const indicator = $("connection");
  const showState = (state: string) => {
    indicator.dataset.state = state;
    indicator.textContent = state;
  };
  showState(client.connectionState);
  client.on("connectionState", showState);

  const lines = new Map<string, Map<string, Line>>(ROOMS.map((r) => [`#${r}`, new Map()]));
  let order = 0;
  let room = `#${location.hash.slice(1) || ROOMS[0]}`;
  const typers = new Map<string, Map<string, string>>();

  // A sender is named as the broker knows it (the name in the token this
  // page's backend vouched for), from presences seen while the page is open;
  // never by a name its message carries, which any member could make up.
  const names = new Map<string, string>([[client.publicKey, name]]);
  const learnNames = () => {
    for (const p of client.presences) names.set(p.pubkey, p.displayName);
  };
  const nameOf = (pubkey: string) => names.get(pubkey) ?? pubkey.slice(0, 8);
  const add = (message: Message) => {
    const target = lines.get(message.targetSpec);
    if (!target || target.has(message.messageId)) return;
    const payload = message.payload as { text?: unknown };
    target.set(message.messageId, { id: message.messageId, sender: message.senderPubkey, text: String(payload.text ?? ""), createdAt: message.createdAt, order: order++ });
  };

  const render = () => {
    const sorted = [...(lines.get(room)?.values() ?? [])].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.order - b.order);
    const list = $("messages");
    list.replaceChildren(...sorted.map((l) => el("li", { "data-id": l.id }, el("span", { class: "who" }, nameOf(l.sender)), el("span", { class: "text" }, l.text))));
    list.scrollTop = list.scrollHeight;
    const typing = [...(typers.get(room)?.values() ?? [])];
    $("typing").textContent = typing.length === 0 ? "" : `${typing.join(", ")} ${typing.length === 1 ? "is" : "are"} typing…`;
    $("rooms").replaceChildren(
      ...ROOMS.map((r) => {
        const button = el("button", { "data-room": r, "aria-current": String(`#${r}` === room) }, `#${r}`);
        button.addEventListener("click", () => void open(`#${r}`));
        return button;
      }),
    );
  };

  const renderOnline = () =>
    $("online").replaceChildren(
      ...client.presences
        .slice()
        .sort((a, b) => a.displayName.localeCompare(b.displayName))
        .map((p) => el("li", { "data-pubkey": p.pubkey, "data-status": p.status }, p.displayName, " ", el("span", { class: "status" }, p.status))),
    );

  /** The room's latest history (every page up to 200 messages), merged with what is already shown. */
  const hydrate = async (target: string) => {
    let before: string | undefined;
    const pages: Message[][] = [];
    for (let fetched = 0; fetched < 200; ) {
      const page = await client.history(target, { limit: 100, ...(before ? { before } : {}) });
      pages.unshift(page.messages);
      fetched += page.messages.length;
      if (page.before === null) break;
      before = page.before;
    }
    for (const message of pages.flat()) add(message);
  };

  const open = async (target: string) => {
    room = target;
    delete $("chat").dataset.joined;
    location.hash = target.slice(1);
    render();
    await client.join(target);
    await hydrate(target);
    render();
    // Only now does this tab get the room's typing and messages live; tests and styles key on it.
    if (room === target) $("chat").dataset.joined = target;
  };

  client.on("message", (m) => {
    add(m);
    typers.get(m.targetSpec)?.delete(m.senderPubkey);
    render();
  });
  client.on("typing", (t) => {
    if (t.senderPubkey === client.publicKey) return;
    let inRoom = typers.get(t.channel);
    if (!inRoom) typers.set(t.channel, (inRoom = new Map()));
    if (t.typing) inRoom.set(t.senderPubkey, nameOf(t.senderPubkey));
    else inRoom.delete(t.senderPubkey);
    render();
  });
  client.on("presence", () => {
    learnNames();
    renderOnline();
    render();
  });
  // Whatever was said while the socket was down is in the history.
  client.on("reconnect", () => void hydrate(room).then(render));

  let lastTyping = 0;
  $("text").addEventListener("input", () => {
    if (Date.now() - lastTyping < TYPING_REPEAT_MS) return;
    lastTyping = Date.now();
    void client.setTyping(room, true);
  });
  $("compose").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $<HTMLInputElement>("text");
    const text = input.value.trim();
    if (text === "") return;
    input.value = "";
    lastTyping = 0;
    const target = room;
    void client.setTyping(target, false);
    void client.send(target, { text }).then((sent) => {
      add({ messageId: sent.messageId, senderPubkey: client.publicKey, targetSpec: target, priority: "next", createdAt: new Date().toISOString(), replyTo: null, encrypted: false, payload: { text } });
      render();
    });
  });

  $("chat").hidden = false;
  await client.subscribePresence();
  learnNames();
  renderOnline();
  await open(room);
}

void main();
