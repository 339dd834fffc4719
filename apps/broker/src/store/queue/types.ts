// The delivery queue's own vocabulary. A delivery is one message owed to one
// recipient member; it moves queued → leased → acked, back to queued when a
// lease ends without an ack, to expired when the message outlives its TTL
// unacknowledged, and is deleted when its recipient is revoked.
import type { Priority } from "@switchboard/protocol";

export type DeliveryState = "queued" | "leased" | "acked" | "expired";

/** What a recipient is handed: the stored message as its sender wrote it. */
export interface OwedMessage {
  messageId: string;
  meshId: string;
  senderPubkey: string;
  targetSpec: string;
  priority: Priority;
  nonce: string;
  ciphertext: string;
  /** ISO-8601 UTC. */
  createdAt: string;
  replyTo: string | null;
}

/** A delivery leased to one presence of its recipient by a claim. */
export interface LeasedDelivery extends OwedMessage {
  presenceId: string;
  memberId: string;
  /** 1 on the first lease, growing with every redelivery. */
  attempt: number;
  /** Queue position: RETURNING has no order, so pushes are sorted by it. */
  seq: number;
}
