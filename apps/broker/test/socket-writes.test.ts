// The writes to one socket on a real Bun server: answers that wait to be
// written with the rest of their batch (`replyLater`) still reach the peer
// before whatever the broker writes to the socket after them, its close
// included.
import { CLOSE_CODES } from "@switchboard/protocol";
import { RawWebSocket, waitUntil } from "@switchboard/testkit";
import { afterAll, describe, expect, test } from "bun:test";
import { closeSocket, newConnection, reply, replyLater, socketLink, type Connection, type Socket } from "../src/transport/ws/connection.ts";
import { InflightBudget } from "../src/transport/ws/pipeline.ts";

const LIMITS = { frames: 100, bytes: 1 << 20, sliceMs: 2 };

const opened: Array<(ws: Socket) => void> = [];
const server = Bun.serve<Connection>({
  port: 0,
  fetch(req, srv) {
    return srv.upgrade(req, { data: newConnection("127.0.0.1", LIMITS, new InflightBudget(1 << 20)) })
      ? undefined
      : new Response("upgrade", { status: 426 });
  },
  websocket: {
    open: (ws) => opened.shift()?.(ws),
    message() {},
    // As the broker's own handler: a closed socket takes no pushes.
    close(ws) {
      ws.data.closed = true;
    },
  },
});
afterAll(() => server.stop(true));

/** A peer's socket, the server's end of it, and what the peer reads until the close. */
async function connected() {
  const serverEnd = new Promise<Socket>((resolve) => opened.push(resolve));
  const peer = new WebSocket(`ws://127.0.0.1:${server.port}`);
  const read: Array<Record<string, unknown>> = [];
  peer.onmessage = (event) => read.push(JSON.parse(String(event.data)) as Record<string, unknown>);
  const closed = new Promise<number>((resolve) => (peer.onclose = (event) => resolve(event.code)));
  await new Promise((resolve) => (peer.onopen = resolve));
  return { peer, ws: await serverEnd, read, closed };
}

const message = {
  messageId: "00000000-0000-4000-8000-000000000001",
  meshId: "00000000-0000-4000-8000-000000000002",
  senderPubkey: "sender",
  targetSpec: "recipient",
  priority: "now" as const,
  nonce: "nonce",
  ciphertext: "ciphertext",
  createdAt: new Date(0).toISOString(),
  replyTo: null,
};

describe("answers written with their batch", () => {
  test("go out before a reply and a push written after them in the same turn", async () => {
    const { peer, ws, read } = await connected();
    replyLater(ws, { type: "pong", serverTime: 1 }, "first");
    reply(ws, { type: "pong", serverTime: 2 }, "second");
    replyLater(ws, { type: "pong", serverTime: 3 }, "third");
    socketLink(ws).push(message, 1);
    replyLater(ws, { type: "pong", serverTime: 4 }, "fourth");
    await waitUntil(() => read.length === 5, 10_000, "the five frames");
    expect(read.map((frame) => frame.reqId ?? frame.type)).toEqual(["first", "second", "third", "push", "fourth"]);
    peer.close();
  });

  test("go out before the socket's end, its notice and its close", async () => {
    const { ws, read, closed } = await connected();
    replyLater(ws, { type: "pong", serverTime: 1 }, "answered");
    socketLink(ws).end("expired");
    expect(await closed).toBe(CLOSE_CODES.expired);
    expect(read.map((frame) => frame.reqId ?? frame.code)).toEqual(["answered", "expired"]);
  });

  test("go out before a close the broker makes", async () => {
    const { ws, read, closed } = await connected();
    replyLater(ws, { type: "pong", serverTime: 1 }, "answered");
    closeSocket(ws, CLOSE_CODES.policy, "invalid");
    expect(await closed).toBe(CLOSE_CODES.policy);
    expect(read.map((frame) => frame.reqId)).toEqual(["answered"]);
  });
});

// A corked send reports its bytes written even when the socket took only part
// of them (the rest is buffered when the cork is lifted): the first backup of
// a socket must not go unnoticed because the write that met it was corked.
describe("a socket whose reader stopped", () => {
  /** The server's end of a socket whose peer reads nothing, and whether it was marked backed up. */
  async function stoppedReader() {
    const serverEnd = new Promise<Socket>((resolve) => opened.push(resolve));
    const reader = await RawWebSocket.open(`ws://127.0.0.1:${server.port}`);
    const ws = await serverEnd;
    const marked = { backedUp: false };
    ws.data.backedUp = () => (marked.backedUp = true);
    reader.pause();
    return { ws, marked };
  }

  // Bounded: the kernel's buffers of a loopback socket take a few MB at most.
  const MAX_WRITES = 200_000;

  test("is marked backed up by the answers, written with their batch, that left bytes buffered", async () => {
    const { ws, marked } = await stoppedReader();
    for (let i = 0; ws.getBufferedAmount() === 0 && i < MAX_WRITES; i++) {
      replyLater(ws, { type: "pong", serverTime: i });
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(ws.getBufferedAmount()).toBeGreaterThan(0);
    expect(marked.backedUp).toBe(true);
    closeSocket(ws, CLOSE_CODES.goingAway, "done");
  });

  test("is marked backed up by the pushes, written together, that left bytes buffered", async () => {
    const { ws, marked } = await stoppedReader();
    const link = socketLink(ws);
    for (let i = 0; ws.getBufferedAmount() === 0 && i < MAX_WRITES; i++) link.writeTogether(() => link.push(message, 1));
    expect(ws.getBufferedAmount()).toBeGreaterThan(0);
    expect(marked.backedUp).toBe(true);
    closeSocket(ws, CLOSE_CODES.goingAway, "done");
  });
});
