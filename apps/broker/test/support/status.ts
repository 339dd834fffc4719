// Helpers shared by the status and hook tests: POST /hook/set-status as a
// hook script would, and read a presence's status the way a peer sees it.
import { expect } from "bun:test";
import type { PeerPresence, PeersReply } from "@switchboard/protocol";
import type { TestPeer } from "@switchboard/testkit";

export interface HookAnswer {
  status: number;
  body: Record<string, unknown>;
}

export interface HookRequest {
  /** undefined → no Authorization header. */
  token?: string;
  /** An object is sent as JSON, a string verbatim. */
  body: unknown;
  /** Sent as x-switchboard-pid. */
  pidHeader?: number;
  headers?: Record<string, string>;
}

export async function postHook(baseUrl: string, req: HookRequest): Promise<HookAnswer> {
  const headers: Record<string, string> = { "content-type": "application/json", ...req.headers };
  if (req.token !== undefined) headers.authorization = `Bearer ${req.token}`;
  if (req.pidHeader !== undefined) headers["x-switchboard-pid"] = String(req.pidHeader);
  const payload = typeof req.body === "string" ? req.body : JSON.stringify(req.body);
  const res = await fetch(`${baseUrl}/hook/set-status`, { method: "POST", headers, body: payload });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { unparsable: text };
  }
  return { status: res.status, body };
}

/** The contract's error body, {"ok":false,"error":<code>}, with a message for people beside the code. */
export function expectHookError(answer: HookAnswer, status: number): void {
  expect({ status: answer.status, body: answer.body }).toEqual({
    status,
    body: { ok: false, error: expect.stringMatching(/^[a-z_]+$/), message: expect.any(String) },
  });
  expect(String(answer.body.message).length).toBeGreaterThan(0);
}

/** The presence with this session id, as list_peers shows it to `viewer`. */
export async function presenceSeenBy(viewer: TestPeer, sessionId: string): Promise<PeerPresence | undefined> {
  const reply = await viewer.request({ type: "list_peers" });
  expect(reply.type).toBe("peers");
  const peers = (reply as unknown as PeersReply).peers;
  return peers.flatMap((p) => p.presences).find((p) => p.sessionId === sessionId);
}

/** Status and source of that session, as list_peers shows it. */
export async function statusSeenBy(viewer: TestPeer, sessionId: string): Promise<{ status: string; statusSource: string } | undefined> {
  const p = await presenceSeenBy(viewer, sessionId);
  return p && { status: p.status, statusSource: p.statusSource };
}

/** set_status through request(): the broker's `status` reply, reduced to status and source. */
export async function setStatus(
  peer: TestPeer,
  status: string,
  source?: string,
): Promise<{ type: unknown; status: unknown; statusSource: unknown }> {
  const frame: Record<string, unknown> = { type: "set_status", status };
  if (source !== undefined) frame.source = source;
  const reply = await peer.request(frame);
  return { type: reply.type, status: reply.status, statusSource: reply.statusSource };
}
