// The dashboard page: the admin token once (session storage), then the
// overview and the selected mesh's members every few seconds and its
// presences live from its presence-event stream. When the broker (or its
// database) does not answer, the page says since when what it shows is old.
const TOKEN_KEY = "switchboard.adminToken";
const REFRESH_MS = 5000;

type Status = "idle" | "working" | "dnd";
interface Presence { presenceId: string; sessionId: string; displayName: string; status: Status; pubkey?: string }
interface Member { memberId: string; pubkey: string; displayName: string; presences: Presence[] }
interface PresenceEvent extends Presence { event: "joined" | "left" | "status"; pubkey: string }
interface Overview {
  meshes: Array<{ id: string; slug: string; members: number; presences: number }>;
  instances: Array<{ id: string; hostname: string; pid: number; presences: number; leaseAgeSeconds: number }>;
  rooms: Array<{ meshSlug: string; channel: string; members: number; connections: number }>;
  roomsMore: boolean;
  queue: { sends: Array<{ at: string; perSecond: number }>; depth: Array<{ at: string; depth: number }> };
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const el = (tag: string, attrs: Record<string, string> = {}, ...children: Array<Node | string>) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
};

/** A token to go back to the form for, saying why. */
class Unauthorized extends Error {
  constructor(message = "the token was refused") {
    super(message);
  }
}

/**
 * The token's header. One with a character no header carries (a curly quote
 * pasted with it) makes fetch throw a TypeError, which would pass for a
 * broker that cannot be reached and be tried again forever.
 */
function authorization(): { authorization: string } {
  const token = sessionStorage.getItem(TOKEN_KEY) ?? "";
  const headers = { authorization: `Bearer ${token}` };
  try {
    new Headers(headers);
  } catch {
    const odd = [...token].find((c) => (c.codePointAt(0) ?? 0) > 0xff || "\0\r\n".includes(c)) ?? "";
    throw new Unauthorized(`the token holds a character no HTTP header can carry (${odd}), so it cannot be the admin token`);
  }
  return headers;
}

/**
 * A request not answered by then fails. Left pending (a browser queues a
 * seventh request to one address over HTTP/1.1 while six tabs hold its
 * connections with their streams), the board would go on saying it is live.
 */
const ANSWER_MS = 10_000;

async function api<T>(path: string, signal?: AbortSignal): Promise<T> {
  const deadline = AbortSignal.timeout(ANSWER_MS);
  try {
    const res = await fetch(path, { headers: authorization(), signal: signal ? AbortSignal.any([signal, deadline]) : deadline });
    if (res.status === 401) throw new Unauthorized();
    if (!res.ok) {
      const said = ((await res.json().catch(() => null)) as { error?: { message?: string } } | null)?.error?.message;
      throw new Error(`${res.status}${said ? ` ${said}` : ""}`);
    }
    return (await res.json()) as T;
  } catch (error) {
    if (deadline.aborted && !signal?.aborted) throw new Error(`the broker did not answer within ${ANSWER_MS / 1000} s`);
    throw error;
  }
}

const why = (error: unknown) => (error instanceof TypeError ? "the broker cannot be reached" : error instanceof Error ? error.message : String(error));

// ——— whether what is shown is current ———

/** What failed last, by source (the overview, the presence stream); empty when everything answers. */
const failing = new Map<string, string>();
let lastGood = new Date();

function health(source: string, problem: string | null): void {
  if (problem === null) failing.delete(source);
  else failing.set(source, problem);
  if (failing.size === 0) lastGood = new Date();
  const stale = failing.size > 0;
  $("board").toggleAttribute("data-stale", stale);
  $("stale").textContent = stale ? `Not live: ${[...failing.values()][0]}. Shown as of ${lastGood.toLocaleTimeString()}; trying again.` : "";
}

// ——— members and their presences, live ———

let members: Member[] = [];
let streamAbort: AbortController | null = null;

/** By name, then key: one order for listed members and those the stream brings between listings, so no row jumps. */
const byName = (a: Member, b: Member) => a.displayName.localeCompare(b.displayName) || (a.pubkey < b.pubkey ? -1 : a.pubkey > b.pubkey ? 1 : 0);

function renderMembers(): void {
  const rows = members.slice().sort(byName).map((m) =>
    el(
      "tr",
      { "data-member": m.pubkey },
      el("td", {}, m.displayName),
      el("td", { class: "mono" }, m.pubkey.slice(0, 16)),
      el(
        "td",
        {},
        ...(m.presences.length === 0
          ? [el("span", { class: "offline" }, "offline")]
          : m.presences.map((p) =>
              el("span", { class: `status ${p.status}`, "data-presence": p.presenceId, "data-status": p.status, title: p.sessionId }, `${p.displayName}: ${p.status}`),
            )),
      ),
    ),
  );
  $("members").replaceChildren(...rows);
}

const listMembers = async (meshId: string, signal: AbortSignal) =>
  (await api<{ members: Member[] }>(`/v1/admin/meshes/${meshId}/members`, signal)).members;

/**
 * The mesh's members as listed now (a revoked one is gone), with the
 * presences the stream gave them. One the list lacks but the stream shows
 * live joined after the list was read: it stays.
 */
function reconcile(listed: Member[]): void {
  const listedKeys = new Set(listed.map((m) => m.pubkey));
  const live = new Map(members.map((m) => [m.pubkey, m.presences]));
  members = [
    ...listed.map((m) => ({ ...m, presences: live.get(m.pubkey) ?? [] })),
    ...members.filter((m) => !listedKeys.has(m.pubkey) && m.presences.length > 0),
  ];
  renderMembers();
}

function applyEvent(e: PresenceEvent): void {
  let member = members.find((m) => m.pubkey === e.pubkey);
  if (!member) {
    member = { memberId: "", pubkey: e.pubkey, displayName: e.displayName, presences: [] };
    members.push(member);
  }
  member.presences = member.presences.filter((p) => p.presenceId !== e.presenceId);
  if (e.event !== "left") member.presences.push({ presenceId: e.presenceId, sessionId: e.sessionId, displayName: e.displayName, status: e.status });
  renderMembers();
}

/** Server-sent events read with fetch, so the token goes in a header; reconnects after a second. */
async function follow(meshId: string, abort: AbortController): Promise<void> {
  while (!abort.signal.aborted) {
    try {
      // Another mesh chosen meanwhile: this one's late answer must not replace its members.
      const listed = await listMembers(meshId, abort.signal);
      if (abort.signal.aborted) return;
      members = listed.map((m) => ({ ...m, presences: [] }));
      renderMembers();
      const res = await fetch(`/v1/admin/meshes/${meshId}/presence-events`, { headers: authorization(), signal: abort.signal });
      if (!res.ok || !res.body) throw new Error(`the presence stream answered ${res.status}`);
      $("live").textContent = "● live";
      health("stream", null);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffered += value;
        let end: number;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const data = block.split("\n").find((line) => line.startsWith("data: "));
          if (data) applyEvent(JSON.parse(data.slice(6)) as PresenceEvent);
        }
      }
    } catch (error) {
      if (abort.signal.aborted) return;
      if (error instanceof Unauthorized) return showLogin(error.message);
      health("stream", why(error));
    }
    if (abort.signal.aborted) return;
    health("stream", failing.get("stream") ?? "the presence stream ended");
    $("live").textContent = "○ reconnecting";
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ——— overview: meshes, chart, rooms, instances ———

/**
 * The chart's lines, and their legend in HTML above it: text in the SVG
 * would shrink with it, below the board's small print on a phone.
 */
function chart(sends: Overview["queue"]["sends"], depth: Overview["queue"]["depth"]): [HTMLElement, SVGElement] {
  const W = 420;
  const H = 140;
  const pad = 24;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", "100%");
  const legend = el("ul", { class: "legend" });
  // The window ends at the broker's latest sample, not at this tab's clock, which may be off by any amount.
  const end = Math.max(...[...sends, ...depth].map((s) => Date.parse(s.at)));
  const x = (at: string) => pad + ((W - 2 * pad) * (600_000 - (end - Date.parse(at)))) / 600_000;
  const line = (points: Array<[number, number]>, max: number, color: string, label: string) => {
    const path = document.createElementNS(ns, "polyline");
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", color);
    path.setAttribute("stroke-width", "2");
    path.setAttribute("points", points.map(([px, v]) => `${px.toFixed(1)},${(H - pad - ((H - 2 * pad) * v) / max).toFixed(1)}`).join(" "));
    svg.append(path);
    const item = el("li", {}, `${label} (max ${max})`);
    item.style.color = color;
    legend.append(item);
  };
  const maxSends = Math.max(1, ...sends.map((s) => Math.ceil(s.perSecond)));
  const maxDepth = Math.max(1, ...depth.map((d) => d.depth));
  // Each color is its legend's too: at least 4.5:1 on white, as text must be.
  line(sends.map((s) => [x(s.at), s.perSecond]), maxSends, "#2f6fdb", "messages per second");
  line(depth.map((d) => [x(d.at), d.depth]), maxDepth, "#a85a12", "queue depth");
  const axis = document.createElementNS(ns, "line");
  for (const [k, v] of Object.entries({ x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, stroke: "#c4c8d2" })) axis.setAttribute(k, String(v));
  svg.append(axis);
  return [legend, svg];
}

/** Bumped by every sign-in and sign-out: what a refresh started before it brings back is dropped. */
let signIn = 0;

class Outdated extends Error {}

async function refresh(): Promise<void> {
  const mine = signIn;
  const o = await api<Overview>("/v1/admin/overview");
  if (mine !== signIn) throw new Outdated();
  const select = $<HTMLSelectElement>("mesh");
  const chosen = select.value || new URLSearchParams(location.search).get("mesh") || o.meshes[0]?.id || "";
  select.replaceChildren(...o.meshes.map((m) => el("option", { value: m.id }, m.slug)));
  const match = o.meshes.find((m) => m.id === chosen || m.slug === chosen);
  select.value = match?.id ?? "";
  $("meshes").replaceChildren(...o.meshes.map((m) => el("tr", {}, el("td", {}, m.slug), el("td", {}, String(m.members)), el("td", {}, String(m.presences)))));
  $("rooms").replaceChildren(
    ...o.rooms.map((r) => el("tr", { "data-room": `${r.meshSlug} ${r.channel}` }, el("td", {}, r.meshSlug), el("td", {}, r.channel), el("td", {}, String(r.members)), el("td", { class: "connections" }, String(r.connections)))),
  );
  $("rooms-more").hidden = !o.roomsMore;
  $("instances").replaceChildren(
    ...o.instances.map((i) => el("tr", {}, el("td", { class: "mono" }, i.id.slice(0, 12)), el("td", {}, `${i.hostname} (${i.pid})`), el("td", {}, String(i.presences)), el("td", {}, `${i.leaseAgeSeconds.toFixed(1)} s`))),
  );
  $("chart").replaceChildren(...chart(o.queue.sends, o.queue.depth));
  if (select.value && (streamAbort === null || select.dataset.following !== select.value)) followMesh(select.value);
  else if (select.value && streamAbort !== null) {
    // Members come and go (a revocation) without a presence event: listed again each refresh.
    const meshId = select.value;
    const signal = streamAbort.signal;
    let listed: Member[];
    try {
      listed = await listMembers(meshId, signal);
    } catch (error) {
      // Cut off by a mesh switch or a sign-out: not a failure of the broker.
      if (signal.aborted) return;
      throw error;
    }
    if (!signal.aborted && mine === signIn && select.dataset.following === meshId) reconcile(listed);
  }
}

function followMesh(meshId: string): void {
  streamAbort?.abort();
  streamAbort = new AbortController();
  $<HTMLSelectElement>("mesh").dataset.following = meshId;
  void follow(meshId, streamAbort);
}

let timer: ReturnType<typeof setInterval> | undefined;
let retry: ReturnType<typeof setTimeout> | undefined;

function signedIn(yes: boolean): void {
  for (const node of document.querySelectorAll<HTMLElement>(".signed-in")) node.hidden = !yes;
  $("board").hidden = !yes;
  $("login").hidden = yes;
}

/** Back to the token form: nothing is fetched any more; the token is forgotten unless it was not the problem. */
function showLogin(message = "", keepToken = false): void {
  signIn++;
  streamAbort?.abort();
  streamAbort = null;
  clearInterval(timer);
  clearTimeout(retry);
  failing.clear();
  health("overview", null);
  if (!keepToken) {
    sessionStorage.removeItem(TOKEN_KEY);
    $<HTMLInputElement>("token").value = "";
    members = [];
    renderMembers();
  }
  signedIn(false);
  // Kept through an outage: it can still be forgotten.
  $("logout").hidden = !keepToken;
  $("login-error").textContent = message;
}

async function open(): Promise<void> {
  clearTimeout(retry);
  signIn++;
  try {
    await refresh();
  } catch (error) {
    if (error instanceof Outdated) return;
    if (error instanceof Unauthorized) return showLogin(error.message);
    // The broker or its database is away: the token may well be right, so it is kept and tried again.
    showLogin(`the broker did not answer (${why(error)}); trying again in ${REFRESH_MS / 1000} s`, true);
    retry = setTimeout(() => void open(), REFRESH_MS);
    return;
  }
  signedIn(true);
  health("overview", null);
  clearInterval(timer);
  timer = setInterval(
    () =>
      refresh().then(
        () => health("overview", null),
        (error: unknown) => {
          if (error instanceof Outdated) return;
          if (error instanceof Unauthorized) showLogin(error.message);
          else health("overview", why(error));
        },
      ),
    REFRESH_MS,
  );
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $<HTMLInputElement>("token").value.trim());
  void open();
});
$("logout").addEventListener("click", () => showLogin());
$("mesh").addEventListener("change", () => followMesh($<HTMLSelectElement>("mesh").value));
if (sessionStorage.getItem(TOKEN_KEY)) void open();
else showLogin();
