// Pushes → the application. A push goes to whatever takes it now (a message
// listener; a waiting request, its reply; an unreadable listener, a push that
// does not open; a typing listener, a typing signal); anything else waits,
// neither acked nor recorded, for a listener of its kind (an application that
// awaits something between connect() and on("message"), or one that only
// sends).
import type { Emitter } from "./emitter.ts";
import { describePush, type Inbox } from "./inbox.ts";
import type { ReplyWaiters } from "./replies.ts";
import { typingOf, type TypingTracker } from "./typing.ts";
import type { ClientEvents, Message } from "./types.ts";
import type { PushFrame } from "./wire.ts";

/** Ephemeral pushes kept for a listener that has not come yet (see hold). */
export const UNHEARD_EPHEMERAL = 1000;

export interface ReceiverDeps {
  events: Emitter<ClientEvents>;
  inbox: Inbox;
  replies: ReplyWaiters;
  typing: TypingTracker;
  acks: "auto" | "manual";
  /** Whether a push may be handed over now: not while the client closes (its last acks are being written), nor after. */
  accepting(): boolean;
}

export class PushReceiver {
  /** By id: a redelivery replaces its first copy. */
  private readonly unheard = new Map<string, PushFrame>();

  constructor(private readonly deps: ReceiverDeps) {}

  receive(frame: PushFrame): void {
    const { events, inbox, replies, acks } = this.deps;
    if (!this.deps.accepting()) return;
    if (!this.isHeard(frame)) return this.hold(frame);
    const result = inbox.receive(frame);
    if (result.kind === "message") return this.deliver(result.message);
    if (result.kind === "unreadable") {
      // Manual acks, and the application is not told its id: it could never
      // ack it, and held it would come back every lease and take up one of
      // the pushes the broker lets be outstanding, for good.
      if (acks === "manual" && !events.has("unreadable")) inbox.ack(result.unreadable.messageId);
      replies.receive(result.unreadable);
      events.emit("unreadable", result.unreadable);
      events.emit("error", result.unreadable.error);
    }
  }

  /** A message or unreadable listener came: what waited goes to it (after its caller has its unsubscribe function). */
  listenerAdded(): void {
    if (this.unheard.size > 0) queueMicrotask(() => this.handOverAll());
  }

  /** A request's send was answered: its reply, if it came already and waits for a listener, goes to the request. */
  requestSent(messageId: string): void {
    for (const [id, frame] of [...this.unheard]) {
      if (frame.replyTo !== messageId) continue;
      this.unheard.delete(id);
      this.receive(frame);
    }
  }

  /** The client ended: what waited is left to the member's next connection (never acked, the broker gives it again). */
  clear(): void {
    this.unheard.clear();
  }

  private handOverAll(): void {
    const frames = [...this.unheard.values()];
    this.unheard.clear();
    for (const frame of frames) this.receive(frame);
  }

  private isHeard(frame: PushFrame): boolean {
    const { events, inbox, replies } = this.deps;
    if (events.has("message") || replies.awaits(describePush(frame))) return true;
    const forUnreadable = events.has("unreadable");
    const forTyping = events.has("typing") && frame.targetSpec.startsWith("#");
    if (!forUnreadable && !forTyping) return false;
    const opened = inbox.open(frame);
    if (opened.kind === "unreadable") return forUnreadable;
    return forTyping && typingOf(opened.message) !== null;
  }

  /**
   * Durable pushes held are bounded by what the broker lets be outstanding
   * unacked; ephemeral ones it does not count, so of those only the newest
   * UNHEARD_EPHEMERAL wait (a client that only sends would otherwise keep
   * every one it is sent, for good).
   */
  private hold(frame: PushFrame): void {
    this.unheard.set(frame.messageId, frame);
    if (frame.ephemeral !== true) return;
    let held = 0;
    let oldest: string | undefined;
    for (const [id, f] of this.unheard) {
      if (f.ephemeral !== true) continue;
      oldest ??= id;
      held++;
    }
    if (held > UNHEARD_EPHEMERAL && oldest !== undefined) this.unheard.delete(oldest);
  }

  private deliver(message: Message): void {
    const { events, inbox, replies, typing, acks } = this.deps;
    const signal = message.targetSpec.startsWith("#") ? typingOf(message) : null;
    if (signal === null) {
      replies.receive(message);
      if (!events.emit("message", message) && acks === "manual") inbox.release(message.messageId);
      return;
    }
    typing.receive(message.targetSpec, message.senderPubkey, signal);
    // Handled here, never by the application: settled as well in manual mode.
    if (acks === "manual") inbox.ack(message.messageId);
  }
}
