import { shownUrl } from "@switchboard/protocol";
import { SwitchboardError } from "./errors.ts";

/** ws(s)://… is used as given; an http(s):// base URL becomes ws(s)://…/ws. */
export function brokerWsUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new SwitchboardError("invalid", `not a URL: ${input}`);
  }
  // A WebSocket refuses to open a URL with a fragment (even an empty one):
  // every attempt would fail as if the broker were away, and be retried for good.
  if (url.href.includes("#")) throw new SwitchboardError("invalid", `the broker URL must have no fragment: ${shownUrl(input)}`);
  if (url.protocol === "ws:" || url.protocol === "wss:") return url.toString();
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new SwitchboardError("invalid", `expected a ws://, wss://, http:// or https:// URL, got ${shownUrl(input)}`);
  }
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  // Trailing slashes first: http://host/ws/ names the broker's /ws, not /ws/ws.
  const path = url.pathname.replace(/\/+$/, "");
  url.pathname = path.endsWith("/ws") ? path : `${path}/ws`;
  return url.toString();
}

/**
 * Why a socket that never opened may have failed, when its URL is not the
 * broker's WebSocket path: the broker answers other paths with a 404 that a
 * WebSocket cannot show.
 */
export function pathHint(wsUrl: string): string {
  let path: string;
  try {
    path = new URL(wsUrl).pathname;
  } catch {
    return "";
  }
  return path.endsWith("/ws") ? "" : `; the broker takes WebSockets on /ws, and this URL's path is ${path}`;
}
