// Pushes → application messages: duplicates are dropped, the envelope is
// opened; one that does not open is reported as unreadable, never as a
// message. In "auto" mode every push is acked on receipt; in "manual" mode a
// push is acked when the application says it handled it (ack()), and a
// duplicate is acked again only if the application already had. An
// ephemeral send's push has no delivery behind it: it is never acked and
// never comes again, so it takes no place among the recent ids either.
import type { AckBatcher } from "./acks.ts";
import { RecentIds } from "./dedupe.ts";
import { SwitchboardError } from "./errors.ts";
import type { KeyRing } from "./keys.ts";
import type { Message, UnreadableMessage } from "./types.ts";
import type { PushFrame } from "./wire.ts";

export type InboxResult =
  | { kind: "message"; message: Message }
  | { kind: "unreadable"; unreadable: UnreadableMessage }
  | { kind: "duplicate" };

export class Inbox {
  /** Handed to the application in manual mode and not acked yet. */
  private readonly unacked = new Set<string>();
  /** Manual mode: ephemeral messages handed over lately, whose ack() sends nothing. */
  private readonly ephemeral = new RecentIds(1_000);

  constructor(
    private readonly keys: KeyRing,
    private readonly acks: AckBatcher,
    private readonly mode: "auto" | "manual",
    private readonly recent = new RecentIds(10_000),
  ) {}

  receive(push: PushFrame): InboxResult {
    const id = push.messageId;
    if (push.ephemeral === true) {
      if (this.mode === "manual") this.ephemeral.add(id);
      return this.open(push);
    }
    if (this.mode === "auto") this.acks.add(id);
    // A message the application still holds stays a duplicate however long
    // it holds it, after the window of recent ids has moved past it.
    const holding = this.unacked.has(id);
    if (holding || this.recent.has(id)) {
      // Seen before: the broker did not get (or apply) the ack. Ack again unless the application is still on it.
      if (this.mode === "manual" && !holding) this.acks.add(id);
      return { kind: "duplicate" };
    }
    this.recent.add(id);
    if (this.mode === "manual") this.unacked.add(id);
    return this.open(push);
  }

  /** The message a push (or a history entry) carries, opened; no ack, no de-duplication. */
  open(push: PushFrame): Exclude<InboxResult, { kind: "duplicate" }> {
    const known = describePush(push);
    let payload: unknown;
    try {
      payload = this.keys.openFrom(push.senderPubkey, push.targetSpec, { nonce: push.nonce, ciphertext: push.ciphertext });
    } catch (error) {
      const reason = error instanceof SwitchboardError ? error.message : String(error);
      const failure = new SwitchboardError("decrypt_failed", `message ${push.messageId} from ${push.senderPubkey}: ${reason}`, { cause: error });
      return { kind: "unreadable", unreadable: { ...known, error: failure } };
    }
    return { kind: "message", message: { ...known, payload } };
  }

  /**
   * Manual mode: the application failed to take this message (its listener
   * threw) and will not ack it. Forgotten, it is handed over again when the
   * broker pushes it again (after its lease, or to the next socket); held, it
   * would be a duplicate for good and keep one of the broker's outstanding
   * pushes. An ack given meanwhile stands.
   */
  release(messageId: string): void {
    if (!this.unacked.delete(messageId)) return;
    this.recent.delete(messageId);
  }

  /** Manual mode: the application handled this message; the broker may forget it. */
  ack(messageId: string): void {
    if (this.ephemeral.has(messageId)) return this.ephemeral.delete(messageId);
    this.unacked.delete(messageId);
    this.acks.add(messageId);
  }
}

/** What the application sees of a push, but for its payload. */
export function describePush(push: PushFrame): Omit<Message, "payload"> {
  return {
    messageId: push.messageId,
    senderPubkey: push.senderPubkey,
    targetSpec: push.targetSpec,
    priority: push.priority,
    createdAt: push.createdAt,
    replyTo: push.replyTo,
    encrypted: push.nonce !== "plain",
    ephemeral: push.ephemeral === true,
  };
}
