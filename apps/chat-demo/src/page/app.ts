// The chat page: rooms are channels, each hydrated from history when it is
// opened (and after every reconnect), then kept live by pushes. Typing is an
// ephemeral channel message, the online list comes from presence events, and
// the header shows the connection state and what went wrong last. Each tab is
// its own member (its key lives in sessionStorage, so a reload keeps it, and a
// duplicated tab, finding the key's lock held, makes one of its own): every
// tab gets every message.
import { generateKeypair, SwitchboardClient, type Message } from "@switchboard/client";

const ROOMS = ["lobby", "support", "random"];
const TYPING_REPEAT_MS = 3000;
/** Keys named per request to the page's backend (it answers at most 200). */
const NAMES_PER_ASK = 100;

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

/**
 * Holds this tab's session for as long as the page lives; false, holding
 * nothing, when another open tab of this origin holds it. A tab opened from
 * another (window.open, a duplicated tab) starts with a copy of its opener's
 * sessionStorage, and the same key and session would replace the first tab's
 * connection. The browser's lock manager decides at once, for every tab, with
 * no tab having to answer in time. Where no lock can be had (a browser
 * without Web Locks, a request refused) the session is kept; should a copy
 * then replace this tab's connection, this tab starts again (below).
 */
function holdSession(sessionId: string): Promise<boolean> {
  if (!("locks" in navigator)) return Promise.resolve(true);
  return new Promise((resolve) => {
    navigator.locks
      .request(`chat.session:${sessionId}`, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        // Released by the browser when the page goes (a reload included).
        return lock === null ? undefined : new Promise<never>(() => {});
      })
      .catch(() => resolve(true));
  });
}

async function identity(): Promise<{ secretKey: string; sessionId: string }> {
  const stored = { secretKey: sessionStorage.getItem("chat.secretKey"), sessionId: sessionStorage.getItem("chat.sessionId") };
  if (stored.secretKey !== null && stored.sessionId !== null && (await holdSession(stored.sessionId))) {
    return { secretKey: stored.secretKey, sessionId: stored.sessionId };
  }
  const secretKey = (await generateKeypair()).secretKey;
  const sessionId = crypto.randomUUID();
  sessionStorage.setItem("chat.secretKey", secretKey);
  sessionStorage.setItem("chat.sessionId", sessionId);
  // Held too, so that a tab opened from this one sees it taken.
  await holdSession(sessionId);
  return { secretKey, sessionId };
}

/** How often a tab starts again with a new key before it stays closed: a peer replacing it on purpose cannot keep it reloading. */
const MAX_FRESH_STARTS = 3;

/**
 * Forgets this tab's key and session and loads the page again, which makes
 * new ones; false, doing nothing, once the tab has done so MAX_FRESH_STARTS times.
 */
function startAfresh(): boolean {
  const starts = Number(sessionStorage.getItem("chat.freshStarts") ?? "0");
  if (starts >= MAX_FRESH_STARTS) return false;
  sessionStorage.setItem("chat.freshStarts", String(starts + 1));
  sessionStorage.removeItem("chat.secretKey");
  sessionStorage.removeItem("chat.sessionId");
  location.reload();
  return true;
}

/** What is wrong with a name, as the demo's backend would refuse it; null for a good one. */
const nameProblem = (name: string): string | null =>
  name === "" ? "a name needs a letter or two" : name.length > 64 ? "a name has at most 64 characters" : null;

function askName(): Promise<string> {
  // Per tab, as the key is: a second window asks for its own name.
  const given = (new URLSearchParams(location.search).get("name") ?? sessionStorage.getItem("chat.name") ?? "").trim();
  if (given !== "" && nameProblem(given) === null) return Promise.resolve(given);
  $("signin").hidden = false;
  if (given !== "") $("signin-error").textContent = `"${given.slice(0, 80)}" will not do: ${nameProblem(given)}`;
  return new Promise((resolve) => {
    const form = $("signin");
    const onSubmit = (event: Event) => {
      event.preventDefault();
      const name = $<HTMLInputElement>("name").value.trim();
      const problem = nameProblem(name);
      $("signin-error").textContent = problem ?? "";
      if (problem !== null) return;
      sessionStorage.setItem("chat.name", name);
      form.hidden = true;
      form.removeEventListener("submit", onSubmit);
      resolve(name);
    };
    form.addEventListener("submit", onSubmit);
  });
}

/** Says what went wrong last (and clears it once the connection is open again). */
const tell = (problem: string) => ($("problem").textContent = problem);

async function main(): Promise<void> {
  // First, so that a tab opened from this one while it loads finds its session held.
  const { secretKey, sessionId } = await identity();
  const config = (await (await fetch("/config.json")).json()) as { brokerUrl: string; mesh: string };
  const name = await askName();
  $("me").textContent = name;
  $("who").hidden = false;
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
      const body = (await res.json().catch(() => ({}))) as { token?: string; error?: string };
      if (!res.ok || body.token === undefined) throw new Error(`the page's backend gave no token (${res.status} ${body.error ?? ""})`.trim());
      return body.token;
    },
  });

  const indicator = $("connection");
  const showState = (state: string) => {
    indicator.dataset.state = state;
    indicator.textContent = state;
  };
  showState(client.connectionState);
  client.on("connectionState", (state) => {
    showState(state);
    if (state === "open") tell("");
  });
  client.on("error", (error) => tell(error.message));
  client.on("close", (info) => {
    // Another connection took this key and session: a copy of this tab that
    // could not tell it was one (no Web Locks), or another client given the
    // same key. This tab starts again with a key of its own rather than stay
    // closed.
    if (info.code === 4000 && startAfresh()) return;
    if (!info.willReconnect) tell(`closed for good (${info.code}${info.reason ? ` ${info.reason}` : ""}); reload the page to start again`);
    else if (info.code === 1006) tell("lost the broker; reconnecting");
  });

  const lines = new Map<string, Map<string, Line>>(ROOMS.map((r) => [`#${r}`, new Map()]));
  let order = 0;
  let room = `#${location.hash.slice(1) || ROOMS[0]}`;
  const typers = new Map<string, Map<string, string>>();

  // A sender is named as the broker knows it (the name in the token this
  // page's backend vouched for), from presences seen while the page is open;
  // never by a name its message carries, which any member could make up.
  // Senders not online now are asked of the backend, which knows the names it
  // vouched for; until it answers (or if it does not know one) a key's first
  // characters stand in.
  const names = new Map<string, string>([[client.publicKey, name]]);
  const asked = new Set<string>();
  const learnNames = () => {
    for (const p of client.presences) names.set(p.pubkey, p.displayName);
  };
  const askNames = (pubkeys: string[]) => {
    const wanted = [...new Set(pubkeys)].filter((k) => !names.has(k) && !asked.has(k));
    for (let i = 0; i < wanted.length; i += NAMES_PER_ASK) {
      const batch = wanted.slice(i, i + NAMES_PER_ASK);
      for (const k of batch) asked.add(k);
      void fetch(`/names?${new URLSearchParams(batch.map((k): [string, string] => ["pubkey", k]))}`)
        .then((res): Promise<Record<string, string>> => (res.ok ? res.json() : Promise.reject(new Error(String(res.status)))))
        .then((known) => {
          for (const [k, n] of Object.entries(known)) if (!names.has(k)) names.set(k, n);
          render();
        })
        // Asked again at the next drawing.
        .catch(() => {
          for (const k of batch) asked.delete(k);
        });
    }
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
    askNames(sorted.map((l) => l.sender));
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
    void client.setTyping(room, true).catch(() => {});
  });
  $("compose").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $<HTMLInputElement>("text");
    const text = input.value.trim();
    if (text === "") return;
    input.value = "";
    lastTyping = 0;
    const target = room;
    void client.setTyping(target, false).catch(() => {});
    client.send(target, { text }).then(
      (sent) => {
        add({ messageId: sent.messageId, senderPubkey: client.publicKey, targetSpec: target, priority: "next", createdAt: new Date().toISOString(), replyTo: null, encrypted: false, payload: { text } });
        render();
        // What went wrong before is over: a message went out.
        tell("");
      },
      (error: unknown) => {
        // Not sent: the text goes back into the box, unless the room changed
        // or something else was typed meanwhile; then the line quotes it.
        const back = room === target && input.value === "";
        if (back) input.value = text;
        const why = error instanceof Error ? error.message : String(error);
        tell(back ? `not sent: ${why}` : `not sent to ${target} (“${text.slice(0, 80)}”): ${why}`);
      },
    );
  });

  $("chat").hidden = false;
  await client.subscribePresence();
  learnNames();
  renderOnline();
  await open(room);
}

void main();
