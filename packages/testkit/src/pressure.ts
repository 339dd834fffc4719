// Drivers for pressure on a running broker, shared by the tests (small sizes,
// assertions) and the robustness benchmark (full sizes, figures): a reader
// that stops reading, writers faster than the broker, floods.
import { readFileSync } from "node:fs";
import type { TestIdentity } from "./peer.ts";
import { buildHello } from "./peer.ts";
import { RawWebSocket } from "./raw-socket.ts";

/** A process's resident memory, in bytes. */
export function rssOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(line?.match(/(\d+)/)?.[1] ?? 0) * 1024;
}

/** Samples a process's RSS every 50 ms until stopped; gives the peak above where it started. */
export function rssPeak(pid: number): { stop(): number } {
  const start = rssOf(pid);
  let peak = start;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(pid));
    } catch {
      // the process ended
    }
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return peak - start;
    },
  };
}

/** A raw-socket presence: hello sent and acknowledged. */
export async function rawPresence(wsUrl: string, meshId: string, identity: TestIdentity): Promise<RawWebSocket> {
  const ws = await RawWebSocket.open(wsUrl);
  ws.sendJson(await buildHello({ identity, meshId }));
  await ws.waitFor(() => ws.messages.find((m) => m.includes('"hello_ack"')), 15_000, "hello_ack");
  return ws;
}

export interface PushSeen {
  messageId: string;
  attempt: number;
}

/** The pushes read so far on each socket, and how many of its messages were looked at. */
const parsed = new WeakMap<RawWebSocket, { scanned: number; pushes: PushSeen[] }>();

/**
 * The pushes a socket received, in order. Each message is parsed once: a
 * reader that asks on every frame of a 14 MB drain would otherwise parse
 * all it had read again each time.
 */
export function pushesOf(ws: RawWebSocket): PushSeen[] {
  const seen = parsed.get(ws) ?? { scanned: 0, pushes: [] };
  parsed.set(ws, seen);
  for (; seen.scanned < ws.messages.length; seen.scanned++) {
    const m = ws.messages[seen.scanned]!;
    if (!m.startsWith('{"type":"push"')) continue;
    const f = JSON.parse(m) as { messageId: string; attempt: number };
    seen.pushes.push({ messageId: f.messageId, attempt: f.attempt });
  }
  return [...seen.pushes];
}

/** Acks every push not acked yet, in frames of at most 500 ids. */
export function ackAll(ws: RawWebSocket, acked: Set<string>): void {
  const fresh = [...new Set(pushesOf(ws).map((p) => p.messageId))].filter((id) => !acked.has(id));
  for (let i = 0; i < fresh.length; i += 500) ws.sendJson({ type: "client_ack", messageIds: fresh.slice(i, i + 500) });
  for (const id of fresh) acked.add(id);
}

/** Reads (and acks) until every one of these messages was pushed to ws. */
export async function readUntilAll(ws: RawWebSocket, messageIds: readonly string[], timeoutMs: number): Promise<void> {
  const acked = new Set<string>();
  await ws.waitFor(
    () => {
      ackAll(ws, acked);
      return messageIds.every((id) => acked.has(id)) ? true : undefined;
    },
    timeoutMs,
    `all ${messageIds.length} messages`,
  );
}

/** The message ids in the order they were first pushed. */
export function firstPushes(ws: RawWebSocket): string[] {
  const seen = new Set<string>();
  const order: string[] = [];
  for (const p of pushesOf(ws)) {
    if (seen.has(p.messageId)) continue;
    seen.add(p.messageId);
    order.push(p.messageId);
  }
  return order;
}

/** Base64-looking filler of the given length. */
export const filler = (bytes: number): string => "A".repeat(bytes);

/**
 * Sends every frame at once on a raw socket, each with a reqId, and waits for
 * all their answers (in send order), or for the broker's close: the frames it
 * left unanswered are undefined.
 */
export async function pipelined(
  ws: RawWebSocket,
  frames: object[],
  timeoutMs: number,
): Promise<Array<Record<string, unknown> | undefined>> {
  const tag = crypto.randomUUID().slice(0, 8);
  const start = ws.messages.length;
  frames.forEach((frame, i) => ws.sendJson({ ...frame, reqId: `${tag}-${i}` }));
  const answers = new Map<string, Record<string, unknown>>();
  let scanned = start;
  await ws.waitFor(
    () => {
      for (; scanned < ws.messages.length; scanned++) {
        const m = ws.messages[scanned]!;
        if (!m.includes(`"reqId":"${tag}-`)) continue;
        const f = JSON.parse(m) as Record<string, unknown>;
        answers.set(String(f.reqId), f);
      }
      return answers.size >= frames.length || ws.close !== null ? true : undefined;
    },
    timeoutMs,
    `${frames.length} answers (have ${answers.size})`,
  );
  return frames.map((_, i) => answers.get(`${tag}-${i}`));
}
