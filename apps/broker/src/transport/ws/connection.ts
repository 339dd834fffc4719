// One WebSocket connection: its state before and after the hello, and the
// link through which services push to it and end it.
import type { PushFrame } from "@switchboard/protocol";
import type { ServerWebSocket } from "bun";
import type { EndReason, LocalPresence, PresenceLink, PushResult } from "../../services/local-presences.ts";
import { END_CLOSE } from "../errors.ts";
import { FramePipeline, type InflightBudget, type InflightLimits } from "./pipeline.ts";
import { RefusalCount } from "./refusals.ts";
import { encode, ephemeralPushFrame, pushFrame, type Reply } from "./wire.ts";

export interface Connection {
  readonly id: string;
  /** The client's address, as the connection gate counts it. */
  readonly address: string;
  /** Counted by the gate as waiting for its hello, until admitted or closed. */
  pendingHello: boolean;
  readonly pipeline: FramePipeline;
  readonly refusals: RefusalCount;
  helloTimer?: Timer;
  /** Set once the hello was admitted. */
  presence?: LocalPresence;
  /** Set with presence: marks it backed up, so that neither claims nor sends lease to it until the socket drains. */
  backedUp?: () => void;
  /**
   * Refused too often: frames read from now on are dropped as after a close
   * (acks still count), and the socket closes once the sends and acks under
   * way are answered.
   */
  ending: boolean;
  closed: boolean;
  /** When the peer last sent anything (a frame, a ping or a pong): silent-sockets.ts. */
  heardAt: number;
  /** When the broker last pinged it; not since it was last heard while at most heardAt (0: never). */
  pingedAt: number;
}

export type Socket = ServerWebSocket<Connection>;

export function newConnection(address: string, limits: InflightLimits, budget: InflightBudget): Connection {
  return {
    id: crypto.randomUUID(),
    address,
    pendingHello: true,
    pipeline: new FramePipeline(limits, budget),
    refusals: new RefusalCount(),
    ending: false,
    closed: false,
    heardAt: 0,
    pingedAt: 0,
  };
}

// The answers to durable sends and acks (`replyLater`) wait for the
// microtasks queued with them: a batch's sends are resolved together, so
// their answers are made in one pass over the microtask queue, and a socket
// answered for several of them gets them in one write instead of one each
// (a write to a socket is a system call, the broker's largest cost at high
// rates). Past ANSWERS_WRITTEN_AT_ONCE of them (large batches: the broker is
// busy) they wait for the event loop's next turn instead, and go out with
// the answers of the other batches of the turn and, per socket, with the
// first push the turn makes to it (at 20,000 msg/s the broker took 53-56 %
// of a core so, 58-59 % writing them at once). Below it they do not wait
// for the turn, whose reads would come first: half a millisecond at 8,000
// msg/s. Every other write to
// a socket, and its close, first writes what waits for it, so each socket's
// frames keep the order they were made in.
const ANSWERS_WRITTEN_AT_ONCE = 32;
const waiting = new Map<Socket, string[]>();
let waitingAnswers = 0;
let flushScheduled = false;

function flushSoon(): void {
  if (waitingAnswers >= ANSWERS_WRITTEN_AT_ONCE) setImmediate(flushAll);
  else flushAll();
}

function flushAll(): void {
  flushScheduled = false;
  for (const ws of [...waiting.keys()]) writeAfterWaiting(ws, () => {});
}

function sendWaiting(ws: Socket): void {
  const frames = waiting.get(ws);
  if (frames === undefined) return;
  waiting.delete(ws);
  waitingAnswers -= frames.length;
  for (const text of frames) afterReply(ws, ws.send(text));
}

/** Writes what waits for the socket, then whatever `write` sends, in one write. */
function writeAfterWaiting<T>(ws: Socket, write: () => T): T {
  return waiting.has(ws) ? writeCorked(ws, write) : write();
}

// A corked send answers its bytes written even when the socket takes only
// part of them as the cork is lifted (the rest is buffered): a socket left
// backing up is marked so here, as a send answering -1 marks it.
function writeCorked<T>(ws: Socket, write: () => T): T {
  const result = ws.cork(() => {
    sendWaiting(ws);
    return write();
  });
  if (ws.getBufferedAmount() > 0) ws.data.backedUp?.();
  return result;
}

// A reply the socket drops (its buffer is full) cannot be taken back: the
// peer would wait for it forever, so the connection ends as stalled. One it
// buffers marks the presence backed up, as a push would: it takes no pushes
// until the socket drains, and is closed as stalled if it never does (a peer
// that asks for history and stops reading held its pages for good).
function afterReply(ws: Socket, status: number): void {
  if (status === 0 && !ws.data.closed) {
    const { code, reason } = END_CLOSE.stalled;
    closeSocket(ws, code, reason);
  } else if (status === -1) {
    ws.data.backedUp?.();
  }
}

export function reply(ws: Socket, frame: Reply, reqId?: string): void {
  const text = encode(frame, reqId);
  writeAfterWaiting(ws, () => afterReply(ws, ws.send(text)));
}

/** As reply, written with the other answers of its batch (see above). */
export function replyLater(ws: Socket, frame: Reply, reqId?: string): void {
  const frames = waiting.get(ws);
  if (frames === undefined) waiting.set(ws, [encode(frame, reqId)]);
  else frames.push(encode(frame, reqId));
  waitingAnswers++;
  if (!flushScheduled) {
    flushScheduled = true;
    queueMicrotask(flushSoon);
  }
}

/** Closes the socket after the frames waiting for it. */
export function closeSocket(ws: Socket, code: number, reason: string): void {
  writeAfterWaiting(ws, () => ws.close(code, reason));
}

// ServerWebSocket.send() answers the bytes written, -1 when the frame was
// buffered behind others (backpressure), 0 when it was dropped.
const resultOf = (status: number): PushResult => (status > 0 ? "sent" : status === -1 ? "congested" : "dropped");

export function socketLink(ws: Socket): PresenceLink {
  const sendPush = (frame: PushFrame): PushResult =>
    ws.data.closed ? "dropped" : writeAfterWaiting(ws, () => resultOf(ws.send(JSON.stringify(frame))));
  return {
    push: (message, attempt) => sendPush(pushFrame(message, attempt)),
    pushEphemeral: (message) => sendPush(ephemeralPushFrame(message)),
    writeTogether: (write) => writeCorked(ws, write),
    // An event the socket drops would leave its subscriber's picture wrong
    // for good (a `left` never told): the connection ends as stalled, and the
    // peer's next socket subscribes again from a fresh snapshot.
    presenceEvent: (event) => {
      if (!ws.data.closed) reply(ws, { type: "presence", ...event });
    },
    // The notice goes if the socket takes it; the close says why either way
    // (a dropped notice must not turn 4001 or 4002 into 1013).
    end: (reason: EndReason) => {
      const { code, reason: text, notice } = END_CLOSE[reason];
      writeAfterWaiting(ws, () => {
        if (notice !== undefined && !ws.data.closed) ws.send(encode({ type: "error", code: notice, message: `closing: ${text}` }, undefined));
        ws.close(code, text);
      });
    },
    framesRead: () => ws.data.pipeline.finished(),
    unsentBytes: () => ws.getBufferedAmount(),
  };
}
