// Every WebSocket frame of protocol version 1. Client frames are parsed with
// these schemas at the broker's edge; server frames are typed here so the
// broker and the SDK agree on them.
import { z } from "zod";
import { audienceOf } from "./signing.ts";

export const PUBKEY = /^[0-9a-f]{64}$/;
export const SIGNATURE = /^[0-9a-f]{128}$/;
export const CHANNEL = /^#[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const TAG = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
/** A session id (Claude Code's, or one a peer picks) is 1 to this many characters, wherever it is given. */
export const MAX_SESSION_ID_LENGTH = 128;
/** A send's own id (its idempotency key over a socket). */
export const MAX_SEND_ID_LENGTH = 128;

export const statusSchema = z.enum(["idle", "working", "dnd"]);
export type Status = z.infer<typeof statusSchema>;
export const statusSourceSchema = z.enum(["hook", "manual", "jsonl"]);
export type StatusSource = z.infer<typeof statusSourceSchema>;
export const prioritySchema = z.enum(["now", "next", "low"]);
export type Priority = z.infer<typeof prioritySchema>;

const reqId = z.string().min(1).max(64).optional();
const pubkey = z.string().regex(PUBKEY, { error: "expected 64 lowercase hex characters" });
const channel = z.string().regex(CHANNEL, { error: "expected #name (letters, digits, . _ -; at most 64)" });

/** What a targetSpec may be, as every refusal of one names it. */
export const TARGET_FORMS = "a pubkey (64 lowercase hex characters), *, #channel or tag:name";
// Named in full: zod's own text for a union none of whose forms fit is "Invalid input".
export const targetSpecSchema = z.union(
  [pubkey, z.literal("*"), channel, z.string().regex(new RegExp(`^tag:${TAG.source.slice(1, -1)}$`), { error: "expected tag:name" })],
  { error: (issue) => (issue.input === undefined ? `required: ${TARGET_FORMS}` : `expected ${TARGET_FORMS}`) },
);

// Postgres text holds neither NUL nor unpaired surrogates (it stores UTF-8): such a
// string would fail the whole group-committed batch, so it is refused at the edge.
export const isStorable = (v: string): boolean => !v.includes("\u0000") && v.isWellFormed();
export const storable = (s: z.ZodString) => s.refine(isStorable, { error: "contains NUL or an unpaired surrogate" });

const helloFields = {
  type: z.literal("hello"),
  reqId,
  meshId: storable(z.string().min(1).max(128)),
  pubkey,
  sessionId: storable(z.string().min(1).max(MAX_SESSION_ID_LENGTH)),
  pid: z.number().int().positive().max(2_147_483_647).optional(),
  cwd: storable(z.string().min(1).max(4096)).optional(),
  displayName: storable(z.string().min(1).max(128)).optional(),
};

const signature = z.string().regex(SIGNATURE, { error: "expected 128 lowercase hex characters" });

/** The longest audience: a DNS name (253) with a port. */
export const MAX_AUDIENCE_LENGTH = 259;

/**
 * A broker's name as URL.host writes it (lower case, without the scheme's
 * default port): what audienceOf gives. Either scheme's, since :80 is
 * written for wss and :443 for ws.
 */
export const audienceSchema = z
  .string()
  .max(MAX_AUDIENCE_LENGTH)
  .refine((v) => v !== "" && (audienceOf(`ws://${v}`) === v || audienceOf(`wss://${v}`) === v), {
    error: "expected a host as a URL names it, lower case (broker.example.com, 127.0.0.1:7900)",
  });

/**
 * A broker name as a person gives it (an option, a setting): trimmed and in
 * lower case, as a hello carries it; or why it is none. The SDK and the CLI
 * both take theirs so, before any connect.
 */
export function givenAudience(text: string): { audience: string } | { error: string } {
  const audience = text.trim().toLowerCase();
  const checked = audienceSchema.safeParse(audience);
  return checked.success ? { audience } : { error: checked.error.issues[0]?.message ?? "not valid" };
}

/**
 * The enrolled peer's hello: signed by its ed25519 key. With an `audience`
 * (the broker it is for) it is signed for that too, in `audienceSignature`.
 */
export const signedHelloFrame = z
  .object({
    ...helloFields,
    timestamp: z.number().int().nonnegative(),
    signature,
    audience: audienceSchema.optional(),
    audienceSignature: signature.optional(),
  })
  .refine((h) => (h.audience === undefined) === (h.audienceSignature === undefined), {
    error: "audience and audienceSignature come together",
    path: ["audienceSignature"],
  });

/** The longest token a JWT hello may carry; an empty or longer one is a bad token (`unauthorized`), checked with the token. */
export const MAX_JWT_LENGTH = 8192;

/**
 * A browser's hello: a web backend vouches for the pubkey with a JWT (no
 * timestamp, no signature). Any string is a well-formed token field: how
 * long it is, as what it says, is the token's check (the frame itself is
 * bounded by MAX_MESSAGE_BYTES).
 */
export const jwtHelloFrame = z.object({
  ...helloFields,
  jwt: z.string(),
});

export const helloFrame = z.union([signedHelloFrame, jwtHelloFrame]);

/** The schema a hello is checked against: a frame carrying `jwt` is a JWT hello. */
export const helloSchemaFor = (raw: Record<string, unknown>) => ("jwt" in raw ? jwtHelloFrame : signedHelloFrame);

export const sendFrame = z.object({
  type: z.literal("send"),
  reqId,
  targetSpec: targetSpecSchema,
  priority: prioritySchema.default("next"),
  nonce: storable(z.string().min(1)),
  ciphertext: storable(z.string()),
  id: storable(z.string().min(1).max(MAX_SEND_ID_LENGTH)).optional(),
  ttlSeconds: z.number().int().positive().max(31_536_000).optional(),
  replyTo: z.uuid().optional(),
  ephemeral: z.boolean().default(false),
});

export const clientAckFrame = z.object({
  type: z.literal("client_ack"),
  reqId,
  messageIds: z.array(z.uuid()).min(1).max(1000),
});

export const setStatusFrame = z.object({
  type: z.literal("set_status"),
  reqId,
  status: statusSchema,
  source: z.enum(["manual", "jsonl"]).default("manual"),
});

export const joinFrame = z.object({ type: z.literal("join"), reqId, channel });
export const leaveFrame = z.object({ type: z.literal("leave"), reqId, channel });
export const listPeersFrame = z.object({ type: z.literal("list_peers"), reqId });
export const pingFrame = z.object({ type: z.literal("ping"), reqId });

export const EVENT_KINDS = ["presence"] as const;
const eventKinds = z.array(z.enum(EVENT_KINDS)).min(1).max(EVENT_KINDS.length);
export const subscribeFrame = z.object({ type: z.literal("subscribe"), reqId, events: eventKinds });
export const unsubscribeFrame = z.object({ type: z.literal("unsubscribe"), reqId, events: eventKinds });

/** History pages hold at most this many messages; a larger `limit` is clamped. */
export const HISTORY_MAX_LIMIT = 200;
export const HISTORY_DEFAULT_LIMIT = 50;
/**
 * A page also ends before the message that would take its content (nonce and
 * ciphertext) past this many bytes, its first message always included; the
 * reply's `more` says older messages are left.
 */
export const HISTORY_PAGE_BYTES = 1_048_576;
export const historyFrame = z.object({
  type: z.literal("history"),
  reqId,
  target: channel,
  before: z.uuid().optional(),
  // Any whole number from 1: one past HISTORY_MAX_LIMIT is clamped, however large (zod's int() stops at 2^53 − 1,
  // and its number() refuses the Infinity that JSON text reads a number past a double's range as: the largest double stands for it).
  limit: z
    .preprocess((v) => (v === Number.POSITIVE_INFINITY ? Number.MAX_VALUE : v), z.number().min(1).refine(Number.isInteger, { error: "expected a whole number" }))
    .optional(),
});

/** Frames a peer may send once its hello was accepted. */
export const sessionFrame = z.discriminatedUnion("type", [
  sendFrame,
  clientAckFrame,
  setStatusFrame,
  joinFrame,
  leaveFrame,
  listPeersFrame,
  pingFrame,
  subscribeFrame,
  unsubscribeFrame,
  historyFrame,
]);

export type HelloFrame = z.infer<typeof helloFrame>;
export type SignedHelloFrame = z.infer<typeof signedHelloFrame>;
export type JwtHelloFrame = z.infer<typeof jwtHelloFrame>;
export type EventKind = (typeof EVENT_KINDS)[number];
export type HistoryFrame = z.infer<typeof historyFrame>;
export type SendFrame = z.infer<typeof sendFrame>;
export type SendFrameInput = z.input<typeof sendFrame>;
export type ClientAckFrame = z.infer<typeof clientAckFrame>;
export type SetStatusFrame = z.infer<typeof setStatusFrame>;
export type SessionFrame = z.infer<typeof sessionFrame>;

// Broker → client.

export const HELLO_ERROR_CODES = [
  "malformed",
  "timestamp_skew",
  "bad_signature",
  "unauthorized",
  "replayed",
  "capacity",
  "no_hello",
  "hello_timeout",
  // A JWT whose exp passed (beyond the leeway); also sent to a connected socket before close 4001.
  "expired",
] as const;
export type HelloErrorCode = (typeof HELLO_ERROR_CODES)[number];

/** The codes of a socket refused at its upgrade, before any hello (an HTTP answer, not a frame). */
export const UPGRADE_REFUSAL_CODES = ["forbidden", "unavailable", "capacity", "rate_limited"] as const;
export type UpgradeRefusalCode = (typeof UPGRADE_REFUSAL_CODES)[number];

export const FRAME_ERROR_CODES = ["invalid", "too_large", "unknown_target", "rate_limited", "forbidden", "queue_full", "internal"] as const;
export type FrameErrorCode = (typeof FRAME_ERROR_CODES)[number];

/** WebSocket close codes the broker uses, standard (1xxx) and its own (4xxx). */
export const CLOSE_CODES = {
  goingAway: 1001,
  policy: 1008,
  tooLarge: 1009,
  internalError: 1011,
  tryAgainLater: 1013,
  replaced: 4000,
  expired: 4001,
  revoked: 4002,
} as const;
