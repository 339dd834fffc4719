// Every frame the broker sends. The broker builds them with these types; the
// SDK validates what it receives with these schemas.
import { z } from "zod";
import {
  FRAME_ERROR_CODES,
  HELLO_ERROR_CODES,
  prioritySchema,
  statusSchema,
  statusSourceSchema,
} from "./frames.ts";

const reqId = z.string().optional();

export const helloAckFrame = z.object({
  type: z.literal("hello_ack"),
  reqId,
  presenceId: z.string(),
  memberId: z.string(),
  meshId: z.string(),
  displayName: z.string(),
  status: statusSchema,
  serverTime: z.number(),
  /** The largest frame, in bytes, the broker takes on this socket (MAX_MESSAGE_BYTES); a larger one closes it with 1009. */
  maxMessageBytes: z.number().int().positive().optional(),
  /** How long a push stays leased to this socket unacknowledged (LEASE_SECONDS) before the broker pushes it again. */
  leaseSeconds: z.number().int().positive().optional(),
  /**
   * How long, at least, the broker remembers a send's id after storing it
   * (DELIVERED_RETENTION_SECONDS): a send written again within it is answered
   * duplicate:true; later it may be stored a second time.
   */
  idRetentionSeconds: z.number().int().positive().optional(),
});

export const sendAckFrame = z.object({
  type: z.literal("ack"),
  reqId,
  /** The send's id, or null when it carried none. */
  id: z.string().nullable(),
  messageId: z.string().nullable(),
  queued: z.boolean(),
  recipients: z.number().int(),
  /** Recipients of a channel, tag or * whose queue was full (MAX_QUEUED_PER_MEMBER): the message is not theirs. Only when some were. */
  fullQueues: z.number().int().positive().optional(),
  duplicate: z.literal(true).optional(),
});

export const channelAckFrame = z.object({
  type: z.literal("ack"),
  reqId,
  channel: z.string(),
  joined: z.boolean(),
});

/** Answers subscribe and unsubscribe: the event kinds the connection is subscribed to now. */
export const subscribedAckFrame = z.object({
  type: z.literal("ack"),
  reqId,
  subscribed: z.array(z.string()),
});

export const pushFrame = z.object({
  type: z.literal("push"),
  messageId: z.string().min(1),
  meshId: z.string(),
  senderPubkey: z.string(),
  targetSpec: z.string(),
  priority: prioritySchema,
  nonce: z.string(),
  ciphertext: z.string(),
  createdAt: z.string(),
  replyTo: z.string().nullable(),
  attempt: z.number().int(),
  /** Only on the push of an ephemeral send: it has no delivery, so nothing to ack and it never comes again. */
  ephemeral: z.literal(true).optional(),
});

export const statusReplyFrame = z.object({
  type: z.literal("status"),
  reqId,
  status: statusSchema,
  statusSource: statusSourceSchema,
});

export const peerPresence = z.object({
  sessionId: z.string(),
  status: statusSchema,
  statusSource: statusSourceSchema,
  connectedAt: z.string(),
});

export const peersReplyFrame = z.object({
  type: z.literal("peers"),
  reqId,
  peers: z.array(z.object({ pubkey: z.string(), displayName: z.string(), presences: z.array(peerPresence) })),
});

export const PRESENCE_EVENTS = ["joined", "left", "status"] as const;
export const presenceEventFrame = z.object({
  type: z.literal("presence"),
  event: z.enum(PRESENCE_EVENTS),
  presenceId: z.string(),
  pubkey: z.string(),
  displayName: z.string(),
  sessionId: z.string(),
  status: statusSchema,
});

/**
 * A channel's stored messages, oldest first; `attempt` is 0 (history is not a
 * delivery). `more`: older retained messages are left for the page before
 * this one (absent from brokers before it, whose pages end at `limit` alone).
 */
export const historyReplyFrame = z.object({
  type: z.literal("history"),
  reqId,
  target: z.string(),
  messages: z.array(pushFrame),
  more: z.boolean().optional(),
});

export const pongFrame = z.object({ type: z.literal("pong"), reqId, serverTime: z.number() });

export const errorFrame = z.object({
  type: z.literal("error"),
  reqId,
  code: z.enum([...HELLO_ERROR_CODES, ...FRAME_ERROR_CODES]),
  message: z.string(),
  /** The send's id, on errors answering a send that carried one. */
  id: z.string().optional(),
});

export const serverFrame = z.union([
  helloAckFrame,
  sendAckFrame,
  channelAckFrame,
  subscribedAckFrame,
  pushFrame,
  presenceEventFrame,
  historyReplyFrame,
  statusReplyFrame,
  peersReplyFrame,
  pongFrame,
  errorFrame,
]);

export type HelloAck = z.infer<typeof helloAckFrame>;
export type SendAck = z.infer<typeof sendAckFrame>;
export type ChannelAck = z.infer<typeof channelAckFrame>;
export type SubscribedAck = z.infer<typeof subscribedAckFrame>;
export type PushFrame = z.infer<typeof pushFrame>;
export type PresenceEventFrame = z.infer<typeof presenceEventFrame>;
export type PresenceEventKind = (typeof PRESENCE_EVENTS)[number];
export type HistoryReply = z.infer<typeof historyReplyFrame>;
export type StatusReply = z.infer<typeof statusReplyFrame>;
export type PeerPresence = z.infer<typeof peerPresence>;
export type PeersReply = z.infer<typeof peersReplyFrame>;
export type Pong = z.infer<typeof pongFrame>;
export type ErrorFrame = z.infer<typeof errorFrame>;
export type ServerFrame = z.infer<typeof serverFrame>;
