// A sender without a socket: the HTTP messaging API (docs/http.md) with an
// API token. With the member's secret key it seals and opens envelopes as
// the socket client does; without it, messages go plain.
import {
  IDEMPOTENCY_KEY,
  IDEMPOTENCY_KEY_HEADER,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  MAX_WAIT_SECONDS,
  httpSendBody,
  httpSendReply,
  messageStatusView,
  publicKeyOf,
  TARGET_FORMS,
  targetSpecSchema,
  type MessageStatusView,
  type Priority,
  type PushFrame,
} from "@switchboard/protocol";
import { MAX_TIMER_MS } from "./backoff.ts";
import { open, PLAIN_NONCE, seal, type Envelope } from "./envelope.ts";
import { checkTimeout } from "./config.ts";
import { SwitchboardError, UNDECIDED_CODES } from "./errors.ts";
import { answerOf, failureOf, isTimeout } from "./http-answer.ts";
import { describePush } from "./inbox.ts";
import { KeyRing } from "./keys.ts";
import type { Message, UnreadableMessage } from "./types.ts";

export interface HttpSenderOptions {
  /** The broker's base URL, http(s)://host:port. */
  url: string;
  /** An API token of the member this sender acts as. */
  token: string;
  /**
   * The mesh (id or slug) the sends are meant for: the broker refuses them
   * (`forbidden`) when the token belongs to another. Unset, they go to the
   * token's mesh, whichever it is.
   */
  mesh?: string;
  /** The member's 64-hex secret key: direct messages are then encrypted, and encrypted replies opened. */
  secretKey?: string;
  /** As the socket client's: keys for non-direct targets; only with secretKey (refused `invalid` without). */
  channelKeys?: Record<string, string>;
  /** For a send that does not wait; default 30000. */
  timeoutMs?: number;
  /** Injectable for tests. */
  fetch?: typeof fetch;
}

export interface HttpSendOptions {
  priority?: Priority;
  ttlSeconds?: number;
  replyTo?: string;
  /** Idempotency-Key; default a random uuid. Send again with the same key to retry safely. */
  idempotencyKey?: string;
  /** As the socket client's; without a secretKey only false (plain) is possible. */
  encrypt?: boolean;
}

export interface HttpRequestOptions extends HttpSendOptions {
  /** How long the broker holds the request open for the reply, 1–60; default 30. */
  waitSeconds?: number;
}

export interface HttpSendResult {
  idempotencyKey: string;
  messageId: string;
  recipients: number;
  /** Recipients of a channel, tag or `*` whose queue was full: the message is not theirs (0 when none was). */
  fullQueues: number;
  duplicate: boolean;
}

export interface HttpRequestResult extends HttpSendResult {
  /** The first reply, opened (and acknowledged by the broker), or null when none came in time, it did not open, or the wait failed. */
  reply: Message | null;
  /**
   * True when the broker stored the message but could not wait for its reply
   * (its database went away meanwhile): `request` again with the same
   * `idempotencyKey` waits for it. False when it waited: a null `reply` then
   * means none came in time.
   */
  waitFailed: boolean;
  /**
   * The first reply when its envelope did not open (sealed for a key this
   * sender lacks, or corrupt): what is known of it and why. The broker counts
   * it acknowledged all the same, and the send itself went through.
   */
  unreadableReply: UnreadableMessage | null;
}

const NO_KEY = new Uint8Array();

/** The broker's base URL, checked once: every request's route is added to its path. */
function baseUrl(input: string): URL {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new SwitchboardError("invalid", `url: not a URL: ${input}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new SwitchboardError("invalid", `url: expected http(s)://, got ${input}`);
  // Behind a query or fragment the route would be lost: every request would go to the base itself.
  if (/[?#]/.test(url.href)) throw new SwitchboardError("invalid", `url: must have no query or fragment: ${input}`);
  return url;
}

export class HttpSender {
  private readonly base: string;
  private readonly fetch: (input: string, init: RequestInit) => Promise<Response>;

  private constructor(
    private readonly options: HttpSenderOptions,
    private readonly keys: KeyRing | null,
    base: URL,
    private readonly token: string,
  ) {
    this.base = base.href.replace(/\/+$/, "");
    // Called as a plain function: a browser's fetch (the global, or window.fetch
    // given as the option) throws "Illegal invocation" when called as a method of this sender.
    const fetchFn = options.fetch ?? globalThis.fetch;
    this.fetch = (input, init) => fetchFn(input, init);
  }

  static async create(options: HttpSenderOptions): Promise<HttpSender> {
    const base = baseUrl(options.url);
    // Around it, a line end read from a file with it is no part of it; inside,
    // fetch would refuse the header, and every send fail as if the broker were away.
    // (From JavaScript it may be missing altogether.)
    const token = typeof options.token === "string" ? options.token.trim() : "";
    if (token === "") throw new SwitchboardError("invalid", "token: an API token is required");
    if (!/^[\u0021-\u007e\u00a1-\u00ff]+$/.test(token)) {
      throw new SwitchboardError(
        "invalid",
        "token: holds whitespace, a control character or a character beyond Latin-1 (a copy cut short with …?), which no Authorization header carries",
      );
    }
    if (options.timeoutMs !== undefined) checkTimeout(options.timeoutMs, "timeoutMs");
    // One the broker refuses would fail every send, each as a 400 of its own.
    if (options.mesh !== undefined && !httpSendBody.shape.mesh.safeParse(options.mesh).success) {
      throw new SwitchboardError("invalid", "mesh: a mesh id or slug, 1 to 63 characters");
    }
    if (options.secretKey === undefined) {
      // Sealing for a channel needs the member's key (it is in the associated
      // data): keys given without it would be dropped and the messages go plain.
      if (Object.keys(options.channelKeys ?? {}).length > 0) throw new SwitchboardError("invalid", "channelKeys need the member's secretKey");
      return new HttpSender(options, null, base, token);
    }
    if (!/^[0-9a-fA-F]{64}$/.test(options.secretKey)) throw new SwitchboardError("invalid", "secretKey: expected 64 hex characters");
    const secretKey = options.secretKey.toLowerCase();
    return new HttpSender(options, new KeyRing(secretKey, await publicKeyOf(secretKey), options.channelKeys), base, token);
  }

  /** The member's public key, when a secretKey was given. */
  get publicKey(): string | null {
    return this.keys?.publicKey ?? null;
  }

  /** Resolves once the broker committed the message. */
  async send(target: string, payload: unknown, opts: HttpSendOptions = {}): Promise<HttpSendResult> {
    const { result } = await this.post(target, payload, opts, undefined);
    return result;
  }

  /** A send whose answer is the first reply to it, as long as the broker holds the request open. */
  async request(target: string, payload: unknown, opts: HttpRequestOptions = {}): Promise<HttpRequestResult> {
    const wait = opts.waitSeconds ?? 30;
    if (!Number.isInteger(wait) || wait < 1 || wait > MAX_WAIT_SECONDS) {
      throw new SwitchboardError("invalid", `waitSeconds: a whole number from 1 to ${MAX_WAIT_SECONDS}`);
    }
    const { result, reply } = await this.post(target, payload, opts, wait);
    // The broker leaves the reply out of its answer when the wait failed once the message was stored.
    if (!reply) return { ...result, reply: null, unreadableReply: null, waitFailed: reply === undefined };
    try {
      return { ...result, reply: this.open(reply), unreadableReply: null, waitFailed: false };
    } catch (error) {
      // The message is stored and the reply consumed: a throw here would lose both.
      const failure = error instanceof SwitchboardError ? error : new SwitchboardError("decrypt_failed", String(error), { cause: error });
      return { ...result, reply: null, unreadableReply: { ...describePush(reply), error: failure }, waitFailed: false };
    }
  }

  /** What became of a message this member sent. */
  async status(messageId: string): Promise<MessageStatusView> {
    const path = `/v1/messages/${encodeURIComponent(messageId)}`;
    const res = await this.call("GET", path, undefined, {}, this.timeoutMs());
    return answerOf(res, messageStatusView, `GET ${path}`);
  }

  /** A pushed message (a reply, or one of a webhook's push_batch) as the application sees it. */
  open(push: PushFrame): Message {
    return { ...describePush(push), payload: this.payloadOf(push) };
  }

  private payloadOf(push: PushFrame): unknown {
    const envelope: Envelope = { nonce: push.nonce, ciphertext: push.ciphertext };
    if (this.keys) return this.keys.openFrom(push.senderPubkey, push.targetSpec, envelope);
    if (push.nonce !== PLAIN_NONCE) {
      throw new SwitchboardError("decrypt_failed", `message ${push.messageId} is encrypted and this sender has no secretKey`);
    }
    return open(envelope, null, NO_KEY);
  }

  private seal(target: string, payload: unknown, encrypt: boolean | undefined): Envelope {
    if (this.keys) return this.keys.sealFor(target, payload, encrypt);
    if (encrypt === true) throw new SwitchboardError("no_key", "encrypt: true needs the member's secretKey");
    return seal(payload, null, NO_KEY);
  }

  private timeoutMs(): number {
    return this.options.timeoutMs ?? 30_000;
  }

  private async post(
    target: string,
    payload: unknown,
    opts: HttpSendOptions,
    wait: number | undefined,
  ): Promise<{ result: HttpSendResult; reply: PushFrame | null | undefined }> {
    if (!targetSpecSchema.safeParse(target).success) {
      throw new SwitchboardError("invalid", `not a target: ${target} (${TARGET_FORMS})`);
    }
    // A key no request can carry would fail every retry with it: refused before anything is sent.
    if (opts.idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(opts.idempotencyKey)) {
      throw new SwitchboardError("invalid", `idempotencyKey: 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters of visible ASCII`);
    }
    const idempotencyKey = opts.idempotencyKey ?? crypto.randomUUID();
    const envelope = this.seal(target, payload, opts.encrypt);
    const body: Record<string, unknown> = { targetSpec: target, ...envelope };
    // Sealed with a key that is not the token's member's, it could not be
    // opened by its recipients: the key goes along and the broker refuses that.
    if (this.keys && envelope.nonce !== PLAIN_NONCE) body.senderPubkey = this.keys.publicKey;
    if (opts.priority !== undefined) body.priority = opts.priority;
    if (opts.ttlSeconds !== undefined) body.ttlSeconds = opts.ttlSeconds;
    if (opts.replyTo !== undefined) body.replyTo = opts.replyTo;
    if (this.options.mesh !== undefined) body.mesh = this.options.mesh;
    const path = wait === undefined ? "/v1/messages" : `/v1/messages?wait=${wait}`;
    // The broker answers by the end of the wait; the margin covers the commit and the network.
    // Past what a timer keeps, Node's (and a browser's) timer would fire at once and abort the request.
    const timeoutMs = wait === undefined ? this.timeoutMs() : Math.min(wait * 1000 + this.timeoutMs(), MAX_TIMER_MS);
    const answer = await this.call("POST", path, body, { [IDEMPOTENCY_KEY_HEADER]: idempotencyKey }, timeoutMs)
      // A 2xx that is not the broker's send answer (a proxy's page, `{}`) is no proof of a send.
      .then((res) => answerOf(res, httpSendReply, `POST ${path}`))
      .catch((error: unknown) => {
        // No verdict (the request may have been applied, or its answer said so
        // unreadably): the key sends it again at most once.
        if (error instanceof SwitchboardError && UNDECIDED_CODES.http.has(error.code)) {
          throw new SwitchboardError(error.code, error.message, {
            cause: error,
            sendId: idempotencyKey,
            httpStatus: error.httpStatus,
            ...(error.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: error.retryAfterSeconds }),
          });
        }
        throw error;
      });
    return {
      result: { idempotencyKey, messageId: answer.messageId, recipients: answer.recipients, fullQueues: answer.fullQueues ?? 0, duplicate: answer.duplicate === true },
      reply: answer.reply,
    };
  }

  private async call(method: string, path: string, body: unknown, headers: Record<string, string>, timeoutMs: number): Promise<Response> {
    let res: Response;
    try {
      res = await this.fetch(`${this.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new SwitchboardError(isTimeout(error) ? "timeout" : "unreachable", `${method} ${path}: ${String(error)}`, { cause: error });
    }
    if (res.ok) return res;
    throw await failureOf(res, `${method} ${path}`);
  }
}
