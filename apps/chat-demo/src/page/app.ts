// The chat page: rooms are channels, each hydrated from history when it is
// opened (and after every reconnect), then kept live by pushes. Typing is an
// ephemeral channel message, the online list comes from presence events, and
// the header shows the connection state and what went wrong last. Each tab is
// its own member (its key lives in sessionStorage, so a reload keeps it, and a
// duplicated tab, finding the key's lock held, makes one of its own): every
// tab gets every message. A message typed here shows at once, marked as on its
// way until the broker has it; it lives in this tab's memory until then.
import { SwitchboardClient, type CloseInfo, type Message } from "@switchboard/client";
import { $, el, isNearEnd, placeInOrder, setNames, setText } from "./dom.ts";
import { askName, forgetIdentity, identity, startAfresh } from "./identity.ts";
import { cutShort, inShownOrder, isUnsent, latestTime, shownPayload, type Line } from "./lines.ts";

const ROOMS = ["lobby", "support", "random"];
const DEFAULT_ROOM = `#${ROOMS[0]}`;
const TYPING_REPEAT_MS = 3000;
/**
 * How long a message waits for a member that is not connected. Every tab is
 * a member of its own, and one closed for good would hold it for the
 * broker's MESSAGE_TTL_SECONDS (a week) in every room it joined; a tab back
 * later reads what it missed from the history, which keeps it regardless.
 */
const MESSAGE_TTL_SECONDS = 3600;
/** Keys named per request to the page's backend (it answers at most 200). */
const NAMES_PER_ASK = 100;
/** Connection attempts failed in a row before the page says what may be wrong. */
const HINT_AFTER_FAILED_TRIES = 3;

/** A line's element and the parts of it that change. */
interface Item {
  li: HTMLElement;
  who: HTMLElement;
  text: HTMLElement;
  note: HTMLElement;
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The room a URL hash names; the first room for a hash that names none of them. */
const roomOfHash = (hash: string): string => (ROOMS.includes(hash.slice(1)) ? hash : DEFAULT_ROOM);

/** What a connection that keeps failing may mean: the page cannot tell a broker that is down from one that refuses its origin. */
const unreachableHint = (brokerUrl: string, failed: number) =>
  `no connection to the broker at ${brokerUrl} after ${failed} tries: it may be down, or it refuses this page's origin (${location.origin}), which its CORS_ORIGINS must list`;

/** A final close no reload of this member gets past: revoked, or its hello refused. */
const refusesMember = (info: CloseInfo) => info.code === 4002 || info.reason === "unauthorized";

/** Says what went wrong last (and clears it once the connection is open again). */
const tell = (problem: string) => ($("problem").textContent = problem);

async function main(): Promise<void> {
  // First, so that a tab opened from this one while it loads finds its session held.
  const { secretKey, sessionId } = await identity();
  const config = (await (await fetch("/config.json")).json()) as { brokerUrl: string; mesh: string };
  const name = await askName();
  $("me").textContent = name;
  $("who").hidden = false;
  /**
   * Attempts since the last open that had a token and still did not open:
   * the broker failed them. One the page's backend gave no token for never
   * reached the broker, and says so itself.
   */
  let brokerFailures = 0;
  /** Whether the attempt under way got its token (the token source is asked once per attempt). */
  let tokenGiven = false;
  const client = await SwitchboardClient.start({
    url: config.brokerUrl,
    meshId: config.mesh,
    secretKey,
    sessionId,
    displayName: name,
    reconnect: { minDelayMs: 300, maxDelayMs: 5000 },
    // The page's backend vouches for this tab's key; asked again on every reconnect.
    token: async ({ publicKey }) => {
      if (tokenGiven && ++brokerFailures >= HINT_AFTER_FAILED_TRIES) tell(unreachableHint(config.brokerUrl, brokerFailures));
      tokenGiven = false;
      let res: Response;
      try {
        res = await fetch("/token", { method: "POST", body: JSON.stringify({ pubkey: publicKey, name }) });
      } catch (error) {
        tell(`the page's backend did not answer: ${messageOf(error)}`);
        throw error;
      }
      const body = (await res.json().catch(() => ({}))) as { token?: string; error?: string };
      if (!res.ok || body.token === undefined) {
        const why = `the page's backend gave no token (${`${res.status} ${body.error ?? ""}`.trim()})`;
        tell(why);
        throw new Error(why);
      }
      tokenGiven = true;
      return body.token;
    },
  });
  /** Says why a call failed, unless the client closed for good: its close said why already. */
  const tellUnlessClosed = (what: string, error: unknown) => {
    if (client.connectionState !== "closed") tell(`${what}: ${messageOf(error)}`);
  };

  const lines = new Map<string, Map<string, Line>>(ROOMS.map((r) => [`#${r}`, new Map()]));
  const items = new WeakMap<Line, Item>();
  /** Rooms whose history has been read: only these can say they have no messages. */
  const loaded = new Set<string>();
  let order = 0;
  let room = roomOfHash(location.hash);
  // A hash that names no room is put right, without a step in the history.
  if (location.hash !== room) history.replaceState(null, "", room);
  const typers = new Map<string, Map<string, string>>();
  /** The next drawing scrolls to the end whatever the reader's place: a room opened, a message sent. */
  let toEnd = true;

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
    // A member keeps its first name: a tab loaded again with another one says the name the others see.
    setText($("me"), names.get(client.publicKey) ?? name);
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
    if (!target) return;
    const known = target.get(message.messageId);
    // The broker's time replaces the one an own line was given when its send was acked.
    if (known) known.createdAt = message.createdAt;
    else target.set(message.messageId, { id: message.messageId, sender: message.senderPubkey, ...shownPayload(message.payload), createdAt: message.createdAt, order: order++ });
  };

  /** An own line, shown from the moment it is typed until the broker has it. A line that failed with the same text goes: this is its retry. */
  const addPending = (target: string, text: string): Line => {
    const inRoom = lines.get(target)!;
    for (const [key, line] of inRoom) if (line.state === "failed" && line.text === text) inRoom.delete(key);
    const line: Line = { id: `local-${crypto.randomUUID()}`, sender: client.publicKey, text, raw: false, createdAt: "", order: order++, state: "pending" };
    inRoom.set(line.id, line);
    return line;
  };
  /**
   * The broker has an own line: it goes after what the room showed then (the
   * ack carries no time; this tab's clock may be wrong) and takes the
   * broker's time from the history when that is next read.
   */
  const confirm = (target: string, line: Line, messageId: string) => {
    const inRoom = lines.get(target)!;
    inRoom.delete(line.id);
    const known = inRoom.get(messageId);
    // The history, read again after a reconnect, had it before the ack came.
    if (known) {
      known.state = "sent";
      return;
    }
    line.createdAt = latestTime(inRoom);
    line.id = messageId;
    line.order = order++;
    line.state = "sent";
    inRoom.set(messageId, line);
  };

  const itemOf = (line: Line): Item => {
    const known = items.get(line);
    if (known) return known;
    // Name and text each set apart, in the direction of their own script: an
    // Arabic name must not pull the digits its message starts with into its run.
    const [who, text, note] = [el("span", { class: "who", dir: "auto" }), el("span", { class: "text", dir: "auto" }), el("span", { class: "note" })];
    // Read out as "name: text"; the name stands apart by its weight on screen.
    const item = { li: el("li", {}, who, el("span", { class: "visually-hidden" }, ": "), text, note), who, text, note };
    items.set(line, item);
    return item;
  };
  const drawLine = (line: Line): HTMLElement => {
    const { li, who, text, note } = itemOf(line);
    li.dataset.id = line.id;
    if (line.state) li.dataset.state = line.state;
    else delete li.dataset.state;
    setText(who, nameOf(line.sender));
    setText(text, line.state === "failed" ? cutShort(line.text) : line.text);
    text.classList.toggle("raw", line.raw);
    setText(note, line.state === "pending" ? "sending…" : line.state === "failed" ? "not sent" : "");
    return li;
  };
  const emptyRoomText = () =>
    loaded.has(room)
      ? "No messages in this room yet."
      : client.connectionState === "open"
        ? "Loading the room…"
        : client.connectionState === "closed"
          ? "Not connected to the broker."
          : "Not connected to the broker yet: the room shows once it answers.";

  const render = () => {
    const sorted = [...(lines.get(room)?.values() ?? [])].sort(inShownOrder);
    askNames(sorted.map((l) => l.sender));
    const list = $("messages");
    const follow = toEnd || isNearEnd(list);
    toEnd = false;
    placeInOrder(list, sorted.map(drawLine));
    list.dataset.empty = emptyRoomText();
    if (follow) list.scrollTop = list.scrollHeight;
    const typing = [...(typers.get(room)?.values() ?? [])];
    setNames($("typing"), typing, typing.length === 0 ? "" : ` ${typing.length === 1 ? "is" : "are"} typing…`);
    for (const button of $("rooms").querySelectorAll<HTMLElement>("button")) button.setAttribute("aria-current", String(`#${button.dataset.room}` === room));
  };

  const renderOnline = () =>
    $("online").replaceChildren(
      ...client.presences
        .slice()
        .sort((a, b) => a.displayName.localeCompare(b.displayName))
        .map((p) => el("li", { "data-pubkey": p.pubkey, "data-status": p.status }, el("span", { dir: "auto" }, p.displayName), " ", el("span", { class: "status" }, p.status))),
    );

  /** The room buttons, made once: a button keeps the keyboard's focus through every drawing. */
  const drawRooms = () =>
    $("rooms").replaceChildren(
      ...ROOMS.map((r) => {
        const button = el("button", { type: "button", "data-room": r }, `#${r}`);
        button.addEventListener("click", () => void open(`#${r}`));
        return button;
      }),
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

  /** The room this tab last said it types in, and when: said again every TYPING_REPEAT_MS while typing goes on there. */
  let typingIn: { room: string; at: number } | null = null;
  /** Tells the room typed in that this tab stopped: a message went out, or another room was opened. */
  const stopTyping = () => {
    if (typingIn === null) return;
    void client.setTyping(typingIn.room, false).catch(() => {});
    typingIn = null;
  };

  const open = async (target: string) => {
    if (typingIn !== null && typingIn.room !== target) stopTyping();
    room = target;
    delete $("chat").dataset.joined;
    if (location.hash !== target) location.hash = target.slice(1);
    // A room's history is not news: only what comes once it is shown is announced.
    $("messages").setAttribute("aria-live", "off");
    toEnd = true;
    render();
    try {
      await client.join(target);
      await hydrate(target);
    } catch (error) {
      return tellUnlessClosed(`could not open ${target}`, error);
    }
    loaded.add(target);
    render();
    if (room !== target) return;
    $("messages").setAttribute("aria-live", "polite");
    // Only now does this tab get the room's typing and messages live; tests and styles key on it.
    $("chat").dataset.joined = target;
  };
  window.addEventListener("hashchange", () => {
    const wanted = roomOfHash(location.hash);
    if (wanted !== room) void open(wanted);
    else if (location.hash !== wanted) history.replaceState(null, "", wanted);
  });

  const indicator = $("connection");
  const showState = (state: string) => {
    indicator.dataset.state = state;
    indicator.textContent = state;
    // Who is online is known only while connected.
    $("online").toggleAttribute("data-stale", state !== "open");
  };
  showState(client.connectionState);
  client.on("connectionState", (state) => {
    showState(state);
    if (state === "open") {
      brokerFailures = 0;
      tokenGiven = false;
      tell("");
    }
    render();
  });
  client.on("error", (error) => tell(error.message));
  const closedForGood = (info: CloseInfo) => {
    $("online").replaceChildren();
    // A closed client tells of no more typing, not even its end: nobody is known to type now.
    typers.clear();
    render();
    const why = `closed for good (${info.code}${info.reason ? ` ${info.reason}` : ""})`;
    if (refusesMember(info)) {
      // The broker will not take this key again: a reload makes a new one.
      forgetIdentity();
      tell(`${why}: the broker refuses this member; reload the page to start again as a new one`);
    } else tell(`${why}; reload the page to start again`);
  };
  client.on("close", (info) => {
    // Another connection took this key and session: a copy of this tab that
    // could not tell it was one (no Web Locks), or another client given the
    // same key. This tab starts again with a key of its own rather than stay
    // closed.
    if (info.code === 4000 && startAfresh()) return;
    if (!info.willReconnect) closedForGood(info);
    else if (info.code === 1006) tell("lost the broker; reconnecting");
  });

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
  client.on("reconnect", () => void hydrate(room).then(render, (error: unknown) => tellUnlessClosed(`could not read ${room} again`, error)));

  $("text").addEventListener("input", () => {
    if (typingIn?.room === room && Date.now() - typingIn.at < TYPING_REPEAT_MS) return;
    typingIn = { room, at: Date.now() };
    void client.setTyping(room, true).catch(() => {});
  });
  $("compose").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $<HTMLInputElement>("text");
    const text = input.value.trim();
    if (text === "") return;
    input.value = "";
    const target = room;
    stopTyping();
    const line = addPending(target, text);
    toEnd = true;
    render();
    client.send(target, { text }, { ttlSeconds: MESSAGE_TTL_SECONDS }).then(
      (sent) => {
        confirm(target, line, sent.messageId);
        render();
        // What went wrong before is over: a message went out.
        tell("");
      },
      (error: unknown) => {
        line.state = "failed";
        render();
        // Not sent: the text goes back into the box, unless the room changed
        // or something else was typed meanwhile; then the line quotes it.
        const back = room === target && input.value === "";
        if (back) input.value = text;
        const why = messageOf(error);
        tell(back ? `not sent: ${why}` : `not sent to ${target} (“${text.slice(0, 80)}”): ${why}`);
      },
    );
  });

  // The rooms, and what the page waits for, before the first connection: a
  // broker that does not answer yet must not look like an empty room.
  drawRooms();
  $("chat").hidden = false;
  render();
  const showPresences = async () => {
    try {
      await client.subscribePresence();
    } catch (error) {
      return tellUnlessClosed("no presences", error);
    }
    learnNames();
    renderOnline();
  };
  await Promise.all([showPresences(), open(room)]);
}

void main();
