// The broker's frames as the SDK reads them, validated at the socket so the
// rest of the code works on checked shapes.
import { prioritySchema, statusSchema, statusSourceSchema } from "@switchboard/protocol";
import { z } from "zod";

const reqId = z.string().optional();

export const helloAckSchema = z.object({
  type: z.literal("hello_ack"),
  reqId,
  presenceId: z.string(),
  memberId: z.string(),
  meshId: z.string(),
  displayName: z.string(),
  status: statusSchema,
  serverTime: z.number(),
});

export const pushSchema = z.object({
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
  attempt: z.number(),
});

// One shape for send acks and channel acks.
const ackSchema = z.object({
  type: z.literal("ack"),
  reqId,
  id: z.string().nullable().optional(),
  messageId: z.string().nullable().optional(),
  queued: z.boolean().optional(),
  recipients: z.number().optional(),
  duplicate: z.boolean().optional(),
  channel: z.string().optional(),
  joined: z.boolean().optional(),
});

const statusReplySchema = z.object({ type: z.literal("status"), reqId, status: statusSchema, statusSource: statusSourceSchema });

const peersSchema = z.object({
  type: z.literal("peers"),
  reqId,
  peers: z.array(
    z.object({
      pubkey: z.string(),
      displayName: z.string(),
      presences: z.array(
        z.object({ sessionId: z.string(), status: statusSchema, statusSource: statusSourceSchema, connectedAt: z.string() }),
      ),
    }),
  ),
});

const pongSchema = z.object({ type: z.literal("pong"), reqId, serverTime: z.number() });

const errorSchema = z.object({ type: z.literal("error"), reqId, code: z.string(), message: z.string(), id: z.string().optional() });

export const serverFrameSchema = z.discriminatedUnion("type", [
  helloAckSchema,
  pushSchema,
  ackSchema,
  statusReplySchema,
  peersSchema,
  pongSchema,
  errorSchema,
]);

export type ServerFrame = z.infer<typeof serverFrameSchema>;
export type HelloAckFrame = z.infer<typeof helloAckSchema>;
export type PushFrame = z.infer<typeof pushSchema>;
export type AckFrame = z.infer<typeof ackSchema>;
export type ErrorFrame = z.infer<typeof errorSchema>;
export type PeersFrame = z.infer<typeof peersSchema>;
/** Frames that answer a client frame (matched by reqId). */
export type ReplyFrame = Exclude<ServerFrame, HelloAckFrame | PushFrame>;

export function parseServerFrame(data: unknown): ServerFrame | null {
  const text =
    typeof data === "string"
      ? data
      : data instanceof ArrayBuffer || data instanceof Uint8Array
        ? new TextDecoder().decode(data)
        : null;
  if (text === null) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = serverFrameSchema.safeParse(json);
  return parsed.success ? parsed.data : null;
}
