// The HTTP messaging API (/v1/messages) and webhook recipients: bodies,
// headers and replies, shared by the broker and the SDK.
import { z } from "zod";
import { PUBKEY, sendFrame, storable } from "./frames.ts";
import { pushFrame } from "./server-frames.ts";

/** Request header carrying a send's idempotency key (the socket send's `id`). */
export const IDEMPOTENCY_KEY_HEADER = "idempotency-key";
export const MAX_IDEMPOTENCY_KEY_LENGTH = 64;
/** A key a client can always send as a header value: visible ASCII, within the length. */
export const IDEMPOTENCY_KEY = new RegExp(`^[\\x21-\\x7e]{1,${MAX_IDEMPOTENCY_KEY_LENGTH}}$`);
/** The longest `?wait=S` a send may ask for, in seconds. */
export const MAX_WAIT_SECONDS = 60;

/**
 * POST /v1/messages: the send frame without type, reqId and id; unknown
 * fields are ignored. `mesh` (an id or a slug) names the mesh the caller
 * means: a token of another mesh is refused rather than sending in its own.
 * `senderPubkey` names the key that sealed the message: a token of another
 * member is refused, since its recipients would open it with that member's
 * key and fail.
 */
export const httpSendBody = sendFrame.pick({ targetSpec: true, priority: true, nonce: true, ciphertext: true, ttlSeconds: true, replyTo: true }).extend({
  ephemeral: z.literal(false, { error: "ephemeral messages cannot be sent over HTTP" }).optional(),
  mesh: z.string().min(1).max(63).optional(),
  senderPubkey: z.string().regex(PUBKEY, { error: "expected 64 lowercase hex characters" }).optional(),
});
export type HttpSendBody = z.infer<typeof httpSendBody>;

/**
 * 201 (or 200 with duplicate) answering POST /v1/messages; `reply` only when
 * the request asked to wait. Unknown fields are ignored, so a broker may add some.
 */
export const httpSendReply = z.object({
  messageId: z.string().min(1),
  queued: z.literal(true),
  recipients: z.number().int().nonnegative(),
  /** As the socket's ack says it: recipients whose queue was full, who do not get the message. Only when some were. */
  fullQueues: z.number().int().positive().optional(),
  duplicate: z.literal(true).optional(),
  reply: pushFrame.nullable().optional(),
});
export type HttpSendReply = z.infer<typeof httpSendReply>;

export const DELIVERY_STATES = ["queued", "leased", "acked", "expired"] as const;
export type DeliveryStateView = (typeof DELIVERY_STATES)[number];

/** GET /v1/messages/:messageId */
export const messageStatusView = z.object({
  messageId: z.string().min(1),
  createdAt: z.string(),
  expiresAt: z.string(),
  recipients: z.array(
    z.object({
      pubkey: z.string(),
      state: z.enum(DELIVERY_STATES),
      attempt: z.number().int(),
      deliveredAt: z.string().nullable(),
      ackedAt: z.string().nullable(),
    }),
  ),
});
export type MessageStatusView = z.infer<typeof messageStatusView>;

// Webhook recipients.

export const WEBHOOK_SIGNATURE_HEADER = "x-switchboard-signature";
export const WEBHOOK_ATTEMPT_HEADER = "x-switchboard-attempt";
export const MAX_WEBHOOK_BATCH = 100;

/** PUT /v1/meshes/:mesh/members/:member/webhook */
export const webhookBody = z.strictObject({
  url: storable(z.string().max(2048)).refine((v) => URL.canParse(v) && ["http:", "https:"].includes(new URL(v).protocol), {
      error: "expected an http:// or https:// URL",
    }),
  secret: storable(z.string().min(16, { error: "expected at least 16 characters" }).max(256)),
});
export type WebhookBody = z.infer<typeof webhookBody>;

export const WEBHOOK_OUTCOMES = ["ok", "http_error", "timeout", "network"] as const;
export type WebhookOutcomeView = (typeof WEBHOOK_OUTCOMES)[number];

/** GET (and PUT) …/webhook. The secret is never returned. */
export interface WebhookStateView {
  url: string;
  queued: number;
  failures: number;
  lastAttemptAt: string | null;
  lastOutcome: WebhookOutcomeView | null;
  lastStatus: number | null;
  nextAttemptAt: string | null;
}

/** The body the broker POSTs to a webhook. */
export const pushBatch = z.object({
  type: z.literal("push_batch"),
  messages: z.array(pushFrame).min(1).max(MAX_WEBHOOK_BATCH),
});
export type PushBatch = z.infer<typeof pushBatch>;

const utf8 = new TextEncoder();

/** Hex HMAC-SHA256, keyed with the secret, of "<timestamp>.<raw body>" (WebCrypto: broker, Node and browsers alike). */
export async function webhookSignature(secret: string, timestamp: number, rawBody: string | Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey("raw", utf8.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const body = typeof rawBody === "string" ? utf8.encode(rawBody) : rawBody;
  const prefix = utf8.encode(`${timestamp}.`);
  const signed = new Uint8Array(prefix.length + body.length);
  signed.set(prefix);
  signed.set(body, prefix.length);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, signed));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** X-Switchboard-Signature: t=<unix seconds>,v1=<hex>. */
export function webhookSignatureHeader(timestamp: number, signature: string): string {
  return `t=${timestamp},v1=${signature}`;
}

/** The header's timestamp and v1 signatures (several may be given), or null when it is not of that form. */
export function parseWebhookSignatureHeader(value: string): { timestamp: number; signatures: string[] } | null {
  let timestamp: number | null = null;
  const signatures: string[] = [];
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) return null;
    const key = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (key === "t" && /^\d{1,12}$/.test(v)) timestamp = Number(v);
    else if (key === "v1" && /^[0-9a-f]{64}$/.test(v)) signatures.push(v);
  }
  return timestamp === null || signatures.length === 0 ? null : { timestamp, signatures };
}
