// Who this tab is: its key and session (kept in sessionStorage, held by a
// Web Lock so a copied tab makes its own) and its display name.
import { generateKeypair } from "@switchboard/client";
import { nameProblem } from "../name-rule.ts";
import { $ } from "./dom.ts";

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

export async function identity(): Promise<{ secretKey: string; sessionId: string }> {
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

/** Forgets this tab's key and session: its next load makes new ones. */
export function forgetIdentity(): void {
  sessionStorage.removeItem("chat.secretKey");
  sessionStorage.removeItem("chat.sessionId");
}

/** How often a tab starts again with a new key before it stays closed: a peer replacing it on purpose cannot keep it reloading. */
const MAX_FRESH_STARTS = 3;

/**
 * Forgets this tab's key and session and loads the page again, which makes
 * new ones; false, doing nothing, once the tab has done so MAX_FRESH_STARTS times.
 */
export function startAfresh(): boolean {
  const starts = Number(sessionStorage.getItem("chat.freshStarts") ?? "0");
  if (starts >= MAX_FRESH_STARTS) return false;
  sessionStorage.setItem("chat.freshStarts", String(starts + 1));
  forgetIdentity();
  location.reload();
  return true;
}

export function askName(): Promise<string> {
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
