// Pushes → application messages: every push is acked, duplicates are dropped,
// the envelope is opened; one that does not open is an error, never a message.
import type { AckBatcher } from "./acks.ts";
import { RecentIds } from "./dedupe.ts";
import { SwitchboardError } from "./errors.ts";
import type { KeyRing } from "./keys.ts";
import type { Message } from "./types.ts";
import type { PushFrame } from "./wire.ts";

export type InboxResult =
  | { kind: "message"; message: Message }
  | { kind: "error"; error: SwitchboardError }
  | { kind: "duplicate" };

export class Inbox {
  constructor(
    private readonly keys: KeyRing,
    private readonly acks: AckBatcher,
    private readonly recent = new RecentIds(10_000),
  ) {}

  receive(push: PushFrame): InboxResult {
    this.acks.add(push.messageId);
    if (!this.recent.add(push.messageId)) return { kind: "duplicate" };
    return this.open(push);
  }

  /** The message a push (or a history entry) carries, opened; no ack, no de-duplication. */
  open(push: PushFrame): Exclude<InboxResult, { kind: "duplicate" }> {
    let payload: unknown;
    try {
      payload = this.keys.openFrom(push.senderPubkey, push.targetSpec, { nonce: push.nonce, ciphertext: push.ciphertext });
    } catch (error) {
      const reason = error instanceof SwitchboardError ? error.message : String(error);
      return {
        kind: "error",
        error: new SwitchboardError("decrypt_failed", `message ${push.messageId} from ${push.senderPubkey}: ${reason}`, {
          cause: error,
        }),
      };
    }
    return {
      kind: "message",
      message: {
        messageId: push.messageId,
        senderPubkey: push.senderPubkey,
        targetSpec: push.targetSpec,
        priority: push.priority,
        createdAt: push.createdAt,
        replyTo: push.replyTo,
        encrypted: push.nonce !== "plain",
        payload,
      },
    };
  }
}
