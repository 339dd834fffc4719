import type { Priority } from "@switchboard/protocol";
import type { SwitchboardError } from "./errors.ts";

export interface ReconnectOptions {
  /** Default Infinity. */
  maxAttempts?: number;
  /** Default 1000. */
  minDelayMs?: number;
  /** Default 30000. */
  maxDelayMs?: number;
}

/**
 * Where a JWT hello's token comes from: called before every connect and
 * reconnect (a token that expired closes the socket with 4001 and the client
 * asks again). A web page fetches it from its own backend.
 */
export type TokenSource = (request: { meshId: string; publicKey: string }) => string | Promise<string>;

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

export interface ClientOptions {
  /** ws://host:port/ws; an http(s):// base URL is turned into ws(s)://…/ws. */
  url: string;
  /** Mesh id or slug. */
  meshId: string;
  /** 64 hex ed25519 seed. */
  secretKey: string;
  /** Default: a random uuid, per client. To stand for a Claude Code session, pass its CLAUDE_CODE_SESSION_ID. */
  sessionId?: string;
  /** Default process.ppid (the Claude Code process that launched this peer). */
  pid?: number;
  /** Default process.cwd(). */
  cwd?: string;
  displayName?: string;
  reconnect?: ReconnectOptions | false;
  /** Acks are batched; default 50, at most MAX_ACK_DELAY_MS (10000: a third of the broker's default lease), and at most a third of the lease a broker's hello_ack tells. */
  ackDelayMs?: number;
  /**
   * "auto" (default): every push is acknowledged on receipt. "manual": a push
   * is acknowledged only when the application calls ack(messageId) — after it
   * has handled the message — so one the application never finished handling
   * (it crashed) is delivered again.
   */
  acks?: "auto" | "manual";
  /**
   * While the socket is down: "queue" (default) keeps calls and writes them
   * after the reconnect; "fail" rejects them at once with "unavailable",
   * including calls whose reply the dropped socket still owed.
   */
  offline?: "queue" | "fail";
  /** A call not answered within this many ms rejects with "timeout" and is not sent again; default none. */
  requestTimeoutMs?: number;
  /** "#name" | "*" | "tag:x" → 64-hex 32-byte key for non-direct messages; "*" also serves targets without their own key. */
  channelKeys?: Record<string, string>;
  /** The WebSocket class; default the runtime's own. One without (Node before 22) passes one, the ws package's say. */
  WebSocket?: WebSocketClass;
  /** For the socket to open and the hello to be answered; default 10000. */
  connectTimeoutMs?: number;
  /**
   * After this many ms with nothing from the broker the client pings it, and
   * after as many again without an answer gives the socket up as silent
   * (closed 1006) and reconnects; default 15000, 0 turns it off.
   */
  heartbeatMs?: number;
  /** JWT hellos (browsers): the broker checks the token instead of a signature; secretKey stays for encryption. */
  token?: TokenSource;
  /**
   * The broker's name a signed hello is signed for, so that an endpoint the
   * client is pointed at cannot pass its hello on to a broker that checks
   * its names (HELLO_AUDIENCES). Default: the URL's host, with its port
   * unless the scheme's default (broker.example.com, 127.0.0.1:7900). Give
   * the broker's own name when dialling it by another (a tunnel, a port
   * forward).
   */
  audience?: string;
}

/** What the application sees, after de-duplication and decryption. */
export interface Message {
  messageId: string;
  senderPubkey: string;
  targetSpec: string;
  priority: Priority;
  createdAt: string;
  replyTo: string | null;
  encrypted: boolean;
  /** Sent ephemeral: never stored, so it needs no ack and never comes again. */
  ephemeral: boolean;
  /** The JSON value the sender passed. */
  payload: unknown;
}

/** A push whose envelope did not open: what is known of it, and why. */
export type UnreadableMessage = Omit<Message, "payload"> & { error: SwitchboardError };

export interface SendResult {
  id: string;
  messageId: string;
  queued: boolean;
  recipients: number;
  /** Recipients of a channel, tag or `*` whose queue was full: the message is not theirs (0 when none was). */
  fullQueues: number;
  duplicate: boolean;
}

export interface SendOptions {
  priority?: Priority;
  /** Idempotency key; default a random uuid. */
  id?: string;
  ttlSeconds?: number;
  replyTo?: string;
  ephemeral?: boolean;
  /** Default: always for direct messages, when a channel key exists otherwise. true without a key rejects with "no_key". */
  encrypt?: boolean;
}

export interface RequestOptions {
  /** Default 30000. */
  timeoutMs?: number;
  priority?: Priority;
  /** The send's idempotency key, as send()'s; default a random uuid. Again with the same id, the request is the same message, awaiting its reply. */
  id?: string;
}

export interface ReplyOptions {
  priority?: Priority;
  /** Default: as the message answered (encrypted, or plain when it came plain). */
  encrypt?: boolean;
}

export interface StatusInfo {
  status: string;
  statusSource: string;
}

export interface CloseInfo {
  code: number;
  reason: string;
  willReconnect: boolean;
}

/** A connect attempt of a background run (`start()`, reconnects) that failed. */
export interface ConnectFailure {
  error: SwitchboardError;
  /** 1 for the run's first attempt. */
  attempt: number;
  /** false when it was the last: the client ends (`error`, then `close`). */
  willRetry: boolean;
}

export interface PeerInfo {
  pubkey: string;
  displayName: string;
  presences: Array<{ sessionId: string; status: string; statusSource: string; connectedAt: string }>;
}

/** A live presence of the mesh, as presence events describe it. */
export interface PresenceInfo {
  presenceId: string;
  pubkey: string;
  displayName: string;
  sessionId: string;
  status: "idle" | "working" | "dnd";
}

export interface PresenceEvent extends PresenceInfo {
  event: "joined" | "left" | "status";
}

/** Someone is (or stopped) typing in a channel; `typing: false` also comes when their signal went stale. */
export interface TypingInfo {
  channel: string;
  senderPubkey: string;
  typing: boolean;
}

export interface HistoryOptions {
  /** Only messages older than this messageId. */
  before?: string;
  /** Default 50; the broker gives at most 200. */
  limit?: number;
}

export interface HistoryPage {
  /** Oldest first. Messages that cannot be opened are left out (and reported as `error`). */
  messages: Message[];
  /** Pass as `before` for the page before this one; null once there is none. */
  before: string | null;
}

export interface ClientEvents {
  message: [Message];
  presence: [PresenceEvent];
  typing: [TypingInfo];
  connectionState: [ConnectionState];
  unreadable: [UnreadableMessage];
  status: [StatusInfo];
  open: [];
  reconnect: [];
  close: [CloseInfo];
  connectFailed: [ConnectFailure];
  error: [SwitchboardError];
}

/**
 * What the SDK uses of a socket: the runtime's WebSocket (browsers, Bun,
 * Node from 22) has it, and so has the ws package's, whose class the DOM's
 * `typeof WebSocket` does not take.
 */
export interface WebSocketLike {
  readonly readyState: number;
  readonly CONNECTING: number;
  readonly OPEN: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "error", listener: () => void): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close", listener: (event: { code: number; reason: string }) => void): void;
}

export type WebSocketClass = new (url: string) => WebSocketLike;
