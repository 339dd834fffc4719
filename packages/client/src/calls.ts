// The client's calls: frames that await the broker's answer (sends and
// control requests), over successive sockets. A call is written at once on
// an open socket, else after the next hello; it ends with its answer, its
// timeout, its withdrawal, or the client's end. The Outbox keeps them in
// the order they were made.
import type { ConnectionState } from "./types.ts";
import type { Connection } from "./connection.ts";
import { namingSend, SwitchboardError } from "./errors.ts";
import { Outbox, type OutboxEntry } from "./outbox.ts";
import { frameBytes, type ReplyFrame } from "./wire.ts";

/** How much sooner than the broker's id window a send is no longer written again. */
const FORGET_MARGIN_MS = 60_000;

export type ReplyOf<T extends ReplyFrame["type"]> = Extract<ReplyFrame, { type: T }>;

/** What the calls need to know of the client's link to the broker. */
export interface CallLink {
  state(): ConnectionState;
  /** The socket whose hello was accepted, while the state is open. */
  connection(): Connection | null;
}

export interface CallOptions {
  /** A call unanswered this long fails with `timeout` (undefined: never). */
  requestTimeoutMs: number | undefined;
  /** "fail": calls made while not connected fail with `unavailable` at once. */
  offline: "queue" | "fail";
}

/** What a broker's hello_ack says of its limits (undefined where it did not say). */
export interface BrokerLimits {
  /** The largest frame it takes on the socket (MAX_MESSAGE_BYTES). */
  maxFrameBytes: number | undefined;
  /** How long, at least, it remembers a stored send's id. */
  idRetentionSeconds: number | undefined;
}

export class Calls {
  private readonly outbox = new Outbox();
  /** The largest frame the broker takes on the current socket (from its hello_ack); unknown before the first. */
  private maxFrameBytes: number | undefined;

  constructor(
    private readonly link: CallLink,
    private readonly options: CallOptions,
  ) {}

  /** Resolves with the reply of type `expected`; `withdraw` aborted while it is unanswered takes it out (it is not written again). */
  make<T extends ReplyFrame["type"]>(frame: Record<string, unknown>, expected: T, withdraw?: AbortSignal): Promise<ReplyOf<T>> {
    const state = this.link.state();
    if (state === "closed") return Promise.reject(new SwitchboardError("closed", "the client is closed"));
    if (state !== "open" && this.options.offline === "fail") {
      return Promise.reject(new SwitchboardError("unavailable", "not connected to the broker (reconnecting)"));
    }
    const reqId = `c-${crypto.randomUUID()}`;
    return new Promise<ReplyOf<T>>((resolve, reject) => {
      const limit = this.options.requestTimeoutMs;
      // Given up on before the broker answered: out of the outbox, never written again.
      const giveUp = (message: string) => {
        if (this.outbox.take(reqId)) entry.reject(new SwitchboardError("timeout", message));
      };
      const timer = limit === undefined ? undefined : setTimeout(() => giveUp(`no answer from the broker within ${limit} ms`), limit);
      const entry = {
        reqId,
        text: JSON.stringify({ ...frame, reqId }),
        writtenOn: 0,
        firstWrittenAt: null,
        once: frame.ephemeral === true,
        ...(frame.type === "send" && frame.ephemeral !== true && typeof frame.id === "string" ? { sendId: frame.id } : {}),
        reject: (error: Error) => {
          clearTimeout(timer);
          reject(error);
        },
        resolve: (reply: ReplyFrame) => {
          clearTimeout(timer);
          if (reply.type === "error") reject(new SwitchboardError(reply.code, reply.message));
          else if (reply.type === expected) resolve(reply as ReplyOf<T>);
          else reject(new SwitchboardError("protocol", `expected a ${expected} reply, got ${reply.type}`));
        },
      };
      const refused = state === "open" ? this.oversized(entry.text) : null;
      if (refused) return entry.reject(refused);
      this.outbox.add(entry);
      withdraw?.addEventListener("abort", () => giveUp("withdrawn before the broker answered"), { once: true });
      const connection = state === "open" ? this.link.connection() : null;
      if (connection) write(entry, connection);
    });
  }

  /**
   * A new socket's hello was accepted (with the broker's limits, where it
   * said them): everything unanswered goes out on it again, in the order it
   * was made (a send keeps its id, so the broker answers duplicate:true for
   * one it had committed) — but a send first written longer ago than the
   * broker remembers ids, which could be stored twice.
   */
  reopened(connection: Connection, limits: BrokerLimits): void {
    this.maxFrameBytes = limits.maxFrameBytes;
    for (const entry of this.outbox.inOrder()) {
      const refused = forgotten(entry, limits.idRetentionSeconds) ?? this.oversized(entry.text);
      if (refused) {
        if (!this.outbox.take(entry.reqId)) continue;
        const { sendId } = entry;
        // Written on an earlier socket, refused only by this one's smaller limit: the broker may have stored it.
        const named = refused.code === "too_large" && entry.writtenOn !== 0 && sendId !== undefined;
        entry.reject(named ? namingSend(refused, sendId, "it was written on a socket that dropped before its answer, and may be stored") : refused);
      } else write(entry, connection);
    }
  }

  /** Settles the call `reply` answers; false when none waits for it (given up on, or not a call's). */
  answer(reply: ReplyFrame): boolean {
    const entry = this.take(reply.reqId);
    entry?.resolve(reply);
    return entry !== undefined;
  }

  /** Fails the call `reqId` (an answer the SDK cannot read), if one waits. */
  fail(reqId: string | undefined, error: SwitchboardError): void {
    this.take(reqId)?.reject(error);
  }

  private take(reqId: string | undefined) {
    return reqId === undefined ? undefined : this.outbox.take(reqId);
  }

  /**
   * The broker closed socket `generation` for a frame too large (1009): the
   * largest call written on it is the likeliest, unless a frame of `bytes`
   * (acks) was larger. Returns whether a call took the blame (rejected: re-sent,
   * it would close every socket).
   */
  blameLargestOver(generation: number, bytes: number): boolean {
    const culprit = this.outbox.largestWrittenOn(generation);
    if (!culprit || culprit.text.length < bytes) return false;
    if (this.outbox.take(culprit.reqId)) culprit.reject(new SwitchboardError("too_large", "the broker closed the socket: frame too large"));
    return true;
  }

  /**
   * Socket `generation` dropped: an ephemeral send it carried may have been
   * delivered, and the broker keeps no id to tell a second copy from a new
   * message, so it fails instead of being written again.
   */
  dropped(generation: number): void {
    for (const entry of this.outbox.takeWrittenOnce(generation)) {
      entry.reject(new SwitchboardError("unavailable", "the connection dropped before the broker answered this ephemeral send; it is not written again"));
    }
  }

  failAll(error: Error): void {
    this.outbox.failAll(error);
  }

  /**
   * A frame over the broker's limit is refused here: written, it would close
   * the socket (1009) and every call on it would wait for the reconnect.
   */
  private oversized(text: string): SwitchboardError | null {
    if (this.maxFrameBytes === undefined) return null;
    const bytes = frameBytes(text);
    if (bytes <= this.maxFrameBytes) return null;
    return new SwitchboardError(
      "too_large",
      `the frame is ${bytes} bytes, over the broker's limit of ${this.maxFrameBytes} (MAX_MESSAGE_BYTES); send less`,
    );
  }
}

function write(entry: OutboxEntry, connection: Connection): void {
  if (!connection.send(entry.text)) return;
  entry.writtenOn = connection.generation;
  // The wall clock, not a monotonic one: the outage to measure may be a
  // machine asleep, which a monotonic clock does not count.
  entry.firstWrittenAt ??= Date.now();
}

/**
 * A durable send written before, so long ago that the broker may have
 * stored it and forgotten its id since: written again, it could be stored
 * a second time. The broker's window runs from its commit, after the first
 * write; the margin covers the time the new write takes to reach its lookup.
 */
function forgotten(entry: OutboxEntry, idRetentionSeconds: number | undefined): SwitchboardError | null {
  if (idRetentionSeconds === undefined || entry.sendId === undefined || entry.firstWrittenAt === null) return null;
  const windowMs = idRetentionSeconds * 1000;
  const elapsedMs = Date.now() - entry.firstWrittenAt;
  if (elapsedMs < windowMs - Math.min(FORGET_MARGIN_MS, windowMs / 10)) return null;
  return new SwitchboardError(
    "outcome_unknown",
    `this send was written ${Math.round(elapsedMs / 1000)} s ago and its answer lost; the broker remembers a send's id ${idRetentionSeconds} s (DELIVERED_RETENTION_SECONDS), so it may be stored and written again could be stored twice: it is not written again`,
  );
}
