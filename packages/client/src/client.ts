// The peer SDK's client: one logical session over successive sockets. The
// socket, the reconnects, the calls awaiting answers, the inbox, the handing
// over of pushes and the envelope live in their own modules; this class
// wires them together and keeps the state machine.
// (Over 300 lines: it is the SDK's one public surface — every call a peer can
// make is a short method here, delegating to those modules.)
import { clientAckFrame, PUBKEY, TARGET_FORMS, targetSpecSchema } from "@switchboard/protocol";
import { AckBatcher } from "./acks.ts";
import { isFinalCloseCode } from "./backoff.ts";
import { Calls } from "./calls.ts";
import { checkTimeout, resolveConfig, type ClientConfig } from "./config.ts";
import { Connection } from "./connection.ts";
import { Emitter } from "./emitter.ts";
import { asError, namingSend, SwitchboardError, UNDECIDED_CODES } from "./errors.ts";
import { buildHello } from "./hello.ts";
import { Heartbeat } from "./heartbeat.ts";
import { historyPage } from "./history.ts";
import { Inbox } from "./inbox.ts";
import { KeyRing } from "./keys.ts";
import { ReplyWaiters } from "./replies.ts";
import { PresenceFeed } from "./presence-feed.ts";
import { PushReceiver } from "./receiver.ts";
import { Reconnector } from "./reconnect.ts";
import { TypingTracker, typingPayload } from "./typing.ts";
import type {
  ClientEvents,
  ClientOptions,
  CloseInfo,
  ConnectFailure,
  ConnectionState,
  HistoryOptions,
  HistoryPage,
  Message,
  PeerInfo,
  PresenceEvent,
  PresenceInfo,
  ReplyOptions,
  RequestOptions,
  SendOptions,
  SendResult,
  StatusInfo,
  TypingInfo,
  UnreadableMessage,
} from "./types.ts";
import { describeUnreadable, type ServerFrame } from "./wire.ts";

type State = ConnectionState;

/** How long close() waits for the broker to have the last acks. */
const CLOSE_FLUSH_MS = 2000;

export class SwitchboardClient {
  readonly publicKey: string;
  private currentPresenceId = "";
  private currentMemberId = "";
  private state: State = "connecting";
  private connection: Connection | null = null;
  private generation = 0;
  private connectedOnce = false;
  private lastHelloTimestamp = 0;
  /** The connect attempt under way: close() cuts it short, so no hello of it lands after the close. */
  private attempt: AbortController | null = null;
  /** Set once close() began: pushes arriving from then on are left to the broker (not handed over, not acked). */
  private closing: Promise<void> | null = null;
  // Ended, the client tells nothing after its own close, a listener's late rejection included.
  private readonly events = new Emitter<ClientEvents>(() => this.isClosed());
  private readonly calls: Calls;
  private readonly reconnector: Reconnector;
  private readonly heartbeat: Heartbeat | null;
  private readonly acks: AckBatcher;
  private readonly inbox: Inbox;
  private readonly keys: KeyRing;
  private readonly replies: ReplyWaiters;
  private readonly receiver: PushReceiver;
  private readonly presenceFeed = new PresenceFeed({
    request: (frame) => this.calls.make(frame, "ack"),
    ping: () => this.ping(),
    emit: (event) => this.events.emit("presence", event),
  });
  private readonly typingTracker = new TypingTracker((info) => this.events.emit("typing", info));

  private constructor(private readonly config: ClientConfig) {
    this.publicKey = config.publicKey;
    this.acks = new AckBatcher(config.ackDelayMs, (messageIds) => {
      const text = JSON.stringify({ type: "client_ack", messageIds });
      return this.connection?.send(text) ? text.length : null;
    });
    this.keys = new KeyRing(config.secretKey, config.publicKey, config.channelKeys);
    this.inbox = new Inbox(this.keys, this.acks, config.acks);
    this.replies = new ReplyWaiters((messageId) => this.receiver.requestSent(messageId));
    this.receiver = new PushReceiver({
      events: this.events,
      inbox: this.inbox,
      replies: this.replies,
      typing: this.typingTracker,
      acks: config.acks,
      // Closing: the acks are being written for the last time, so a message
      // handed over now would come again to the next connection.
      accepting: () => this.closing === null && !this.isClosed(),
    });
    this.calls = new Calls(
      { state: () => this.state, connection: () => this.connection },
      { requestTimeoutMs: config.requestTimeoutMs, offline: config.offline },
    );
    this.heartbeat =
      config.heartbeatMs === 0
        ? null
        : new Heartbeat(config.heartbeatMs, {
            ping: () => this.ping(),
            silent: (quietMs) => this.connection?.abandon(1006, `nothing from the broker for ${quietMs} ms, a ping's wait included`),
          });
    this.reconnector = new Reconnector(config.reconnect, {
      attempt: () => this.establish(),
      ended: () => this.isClosed(),
      // Reconnecting is for a client that was connected: until its first hello it is still connecting.
      retrying: () => this.setState(this.connectedOnce ? "reconnecting" : "connecting"),
      failed: (error, attempt, willRetry) => this.events.emit("connectFailed", { error, attempt, willRetry }),
      gaveUp: (final) => {
        // Ended before the events, as for a final close code.
        this.shutdown(final);
        this.events.emit("error", final);
        this.events.emit("close", { code: 1006, reason: final.code, willReconnect: false });
      },
    });
  }

  /** Resolves after the first hello_ack; rejects with SwitchboardError(code) on a refused hello. */
  static async connect(options: ClientOptions): Promise<SwitchboardClient> {
    const client = new SwitchboardClient(await resolveConfig(options));
    try {
      await client.establish();
    } catch (error) {
      client.shutdown(asError(error));
      throw error;
    }
    return client;
  }

  /**
   * Resolves at once with a client that connects in the background, with the
   * reconnect policy from its first attempt (a page that loads while the
   * broker is away). Calls wait in the outbox until a hello is accepted.
   */
  static async start(options: ClientOptions): Promise<SwitchboardClient> {
    const client = new SwitchboardClient(await resolveConfig(options));
    client.reconnector.start();
    return client;
  }

  get connectionState(): ConnectionState {
    return this.state;
  }

  /** The mesh's live presences, kept by presence events (after subscribePresence()). */
  get presences(): PresenceInfo[] {
    return this.presenceFeed.list();
  }

  get presenceId(): string {
    return this.currentPresenceId;
  }

  get memberId(): string {
    return this.currentMemberId;
  }

  /** True while a socket is open and its hello was accepted. */
  get connected(): boolean {
    return this.state === "open";
  }

  on(event: "message", fn: (m: Message) => void): () => void;
  on(event: "presence", fn: (e: PresenceEvent) => void): () => void;
  on(event: "typing", fn: (t: TypingInfo) => void): () => void;
  on(event: "connectionState", fn: (state: ConnectionState) => void): () => void;
  on(event: "unreadable", fn: (m: UnreadableMessage) => void): () => void;
  on(event: "status", fn: (s: StatusInfo) => void): () => void;
  on(event: "open" | "reconnect", fn: () => void): () => void;
  on(event: "close", fn: (info: CloseInfo) => void): () => void;
  on(event: "connectFailed", fn: (failure: ConnectFailure) => void): () => void;
  on(event: "error", fn: (e: SwitchboardError) => void): () => void;
  on<K extends keyof ClientEvents>(event: K, fn: (...args: ClientEvents[K]) => void): () => void {
    const off = this.events.on(event, fn);
    if (event === "message" || event === "unreadable") this.receiver.listenerAdded();
    return off;
  }

  send(target: string, payload: unknown, opts: SendOptions = {}): Promise<SendResult> {
    return this.sendWithin(target, payload, opts);
  }

  /** A send; `withdraw` aborted while it is unanswered takes it out of the outbox (it is not written again). */
  private async sendWithin(target: string, payload: unknown, opts: SendOptions, withdraw?: AbortSignal): Promise<SendResult> {
    if (!targetSpecSchema.safeParse(target).success) {
      throw new SwitchboardError("invalid", `not a target: ${target} (${TARGET_FORMS})`);
    }
    const id = opts.id ?? crypto.randomUUID();
    const envelope = this.keys.sealFor(target, payload, opts.encrypt);
    const frame: Record<string, unknown> = { type: "send", targetSpec: target, ...envelope, id };
    if (opts.priority !== undefined) frame.priority = opts.priority;
    if (opts.ttlSeconds !== undefined) frame.ttlSeconds = opts.ttlSeconds;
    if (opts.replyTo !== undefined) frame.replyTo = opts.replyTo;
    if (opts.ephemeral !== undefined) frame.ephemeral = opts.ephemeral;
    const ack = await this.calls.make(frame, "ack", withdraw).catch((error: unknown) => {
      // No verdict: the caller needs the id to send it again without a second
      // copy (not for an ephemeral send: the broker does not look its id up).
      if (error instanceof SwitchboardError && UNDECIDED_CODES.socket.has(error.code) && opts.ephemeral !== true) {
        throw namingSend(error, id);
      }
      throw error;
    });
    if (!("messageId" in ack) || ack.messageId === null) {
      throw new SwitchboardError("protocol", "a send ack without messageId");
    }
    return {
      id,
      messageId: ack.messageId,
      queued: ack.queued,
      recipients: ack.recipients,
      fullQueues: ack.fullQueues ?? 0,
      duplicate: ack.duplicate === true,
    };
  }

  /** Resolves with the first message whose replyTo is the request's messageId. */
  request(target: string, payload: unknown, opts: RequestOptions = {}): Promise<Message> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    try {
      checkTimeout(timeoutMs, "timeoutMs");
    } catch (error) {
      return Promise.reject(error);
    }
    const id = opts.id ?? crypto.randomUUID();
    const sendOpts: SendOptions = { id, ...(opts.priority === undefined ? {} : { priority: opts.priority }) };
    const answerers = { from: PUBKEY.test(target) ? target : null, sealed: this.keys.seals(target) };
    return this.replies.request((withdraw) => this.sendWithin(target, payload, sendOpts, withdraw), id, timeoutMs, answerers);
  }

  /** Answers in kind unless opts.encrypt says otherwise: a message that came in the clear (from a sender without its key, over HTTP) is answered in the clear. */
  reply(to: Message, payload: unknown, opts: ReplyOptions = {}): Promise<SendResult> {
    const encrypt = opts.encrypt ?? (to.encrypted ? undefined : false);
    return this.send(to.senderPubkey, payload, { ...opts, replyTo: to.messageId, ...(encrypt === undefined ? {} : { encrypt }) });
  }

  async setStatus(status: "idle" | "working" | "dnd", source: "manual" | "jsonl" = "manual"): Promise<StatusInfo> {
    const reply = await this.calls.make({ type: "set_status", status, source }, "status");
    return { status: reply.status, statusSource: reply.statusSource };
  }

  async join(channel: string): Promise<void> {
    await this.calls.make({ type: "join", channel: channel.startsWith("#") ? channel : `#${channel}` }, "ack");
  }

  async leave(channel: string): Promise<void> {
    await this.calls.make({ type: "leave", channel: channel.startsWith("#") ? channel : `#${channel}` }, "ack");
  }

  async listPeers(): Promise<PeerInfo[]> {
    return (await this.calls.make({ type: "list_peers" }, "peers")).peers;
  }

  /** A page of a joined channel's stored messages, oldest first (hydration after a load or a reconnect). */
  async history(channel: string, opts: HistoryOptions = {}): Promise<HistoryPage> {
    const target = channel.startsWith("#") ? channel : `#${channel}`;
    const frame: Record<string, unknown> = { type: "history", target };
    if (opts.before !== undefined) frame.before = opts.before;
    if (opts.limit !== undefined) frame.limit = opts.limit;
    const reply = await this.calls.make(frame, "history");
    return historyPage(reply.messages, reply.more, opts.limit, this.inbox, (error) => this.events.emit("error", error));
  }

  /**
   * Presence events of the whole mesh from now on: `presence` events, and
   * `presences` kept up to date. Renewed by itself after every reconnect.
   */
  subscribePresence(): Promise<void> {
    return this.presenceFeed.subscribe();
  }

  unsubscribePresence(): Promise<void> {
    return this.presenceFeed.unsubscribe();
  }

  /**
   * Tells a channel's members this one is typing (or stopped); repeat it
   * every few seconds while typing. Said while not connected it is dropped:
   * written after the reconnect, it would show a typing long past.
   */
  async setTyping(channel: string, typing = true): Promise<void> {
    if (this.state !== "open") return;
    await this.send(channel.startsWith("#") ? channel : `#${channel}`, typingPayload(typing), { ephemeral: true });
  }

  /** The broker's clock (ms since the epoch). */
  async ping(): Promise<number> {
    return (await this.calls.make({ type: "ping" }, "pong")).serverTime;
  }

  /**
   * With acks: "manual", tells the broker that this message (or unreadable
   * message) was handled; it is not delivered again. Batched like every ack.
   */
  ack(messageId: string): void {
    // Checked in either mode, so a bad id fails where it is written, not once
    // acks are manual: batched, it would make the broker refuse the whole
    // frame, and the real acks in it with it.
    if (!clientAckFrame.safeParse({ type: "client_ack", messageIds: [messageId] }).success) {
      throw new SwitchboardError("invalid", `ack: not a message id (a UUID): ${String(messageId)}`);
    }
    if (this.config.acks === "manual" && this.state !== "closed") this.inbox.ack(messageId);
  }

  /** Flushes pending acks (and waits until the broker has them), closes, never reconnects. */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    if (this.state === "closed") return;
    this.attempt?.abort();
    const connection = this.state === "open" ? this.connection : null;
    if (connection) await this.flushAcks(CLOSE_FLUSH_MS);
    // A final close that came meanwhile has ended the client and said so.
    if (this.isClosed()) return;
    this.shutdown(new SwitchboardError("closed", "the client was closed"));
    await connection?.close(1000, "client closed");
    this.events.emit("close", { code: 1000, reason: "client closed", willReconnect: false });
  }

  /** Writes the pending acks and waits (at most ms) for the broker to have them; acks the application gives meanwhile go too. */
  private async flushAcks(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
    try {
      while (this.acks.pending > 0 && this.state === "open") {
        this.acks.flush();
        // Frames are handled in order: the pong proves the acks were applied.
        const applied = await Promise.race([this.ping().then(() => true, () => false), late.then(() => false)]);
        if (!applied) return;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  // ——— internals ———

  private async establish(): Promise<void> {
    const generation = ++this.generation;
    const attempt = new AbortController();
    this.attempt = attempt;
    // A fresh timestamp on every attempt, never repeated: the same signature twice would be refused as a replay.
    const floor = this.lastHelloTimestamp;
    const timestamp = Math.max(Date.now(), floor + 1);
    this.lastHelloTimestamp = timestamp;
    const hello = await buildHello(this.config, timestamp, attempt.signal);
    // Closed while the hello was made (a token source may take a while): a
    // hello sent now could replace a session the application opened since.
    if (this.ending()) throw new SwitchboardError("closed", "the client was closed while connecting");
    const { connection, ack } = await Connection.open({
      url: this.config.url,
      WebSocket: this.config.WebSocket,
      hello,
      timeoutMs: this.config.connectTimeoutMs,
      generation,
      signal: attempt.signal,
      handlers: {
        onFrame: (frame) => this.onFrame(frame),
        onInvalidFrame: (data) => this.onInvalidFrame(data),
        onClose: (code, reason) => this.onSocketClosed(generation, code, reason),
      },
    })
      .catch((error: unknown) => {
        // Refused for its clock, this hello was recorded nowhere: the next one
        // need not come after it. Else a clock that was far ahead would keep
        // every later hello as far ahead, refused, after it was set right.
        if (error instanceof SwitchboardError && error.code === "timestamp_skew" && this.lastHelloTimestamp === timestamp) {
          this.lastHelloTimestamp = floor;
        }
        throw error;
      })
      .finally(() => {
        if (this.attempt === attempt) this.attempt = null;
      });
    if (this.ending()) {
      await connection.close(1000, "client closed");
      throw new SwitchboardError("closed", "the client was closed while connecting");
    }
    this.connection = connection;
    this.acks.connected(ack.maxMessageBytes, ack.leaseSeconds);
    this.reconnector.opened();
    this.currentPresenceId = ack.presenceId;
    this.currentMemberId = ack.memberId;
    // Before the state says open: a call made by a listener of that change comes after.
    this.calls.reopened(connection, { maxFrameBytes: ack.maxMessageBytes, idRetentionSeconds: ack.idRetentionSeconds });
    this.heartbeat?.start();
    this.setState("open");
    // A listener of that change called close(): the client is ending, and tells of no opening.
    if (this.ending()) return;
    this.acks.flush();
    const reconnected = this.connectedOnce;
    this.connectedOnce = true;
    // Subscriptions belong to a socket: a new one subscribes again.
    // A client closed meanwhile failed the renewal itself: nothing to report after its close.
    if (reconnected) {
      this.presenceFeed.reconnected().catch((error: unknown) => {
        if (!this.ending()) this.events.emit("error", asError(error));
      });
    }
    this.events.emit("open");
    if (reconnected) this.events.emit("reconnect");
  }

  private setState(state: State): void {
    if (this.state === state) return;
    this.state = state;
    this.events.emit("connectionState", state);
  }

  private onFrame(frame: ServerFrame): void {
    // Ended (close() waits for its socket's close handshake): every call has
    // failed already, and no event comes after the end.
    if (this.isClosed()) return;
    this.heartbeat?.heard();
    if (frame.type === "push") return this.receiver.receive(frame);
    if (frame.type === "presence") {
      const { type: _, ...event } = frame;
      this.presenceFeed.receive(event);
      return;
    }
    if (frame.type === "hello_ack") return;
    // The close 4001 right behind it reconnects with a fresh token.
    if (frame.type === "error" && frame.code === "expired" && frame.reqId === undefined) return;
    if (frame.type === "status") this.events.emit("status", { status: frame.status, statusSource: frame.statusSource });
    // An error with a reqId and no call is the late answer to one given up
    // on (timed out, withdrawn), whose caller heard already: not news.
    if (!this.calls.answer(frame) && frame.type === "error" && frame.reqId === undefined) {
      this.events.emit("error", new SwitchboardError(frame.code, frame.message));
    }
  }

  /**
   * A frame the schemas refuse is reported; one answering a call fails that
   * call, which would otherwise wait for an answer that already came.
   */
  private onInvalidFrame(data: unknown): void {
    if (this.isClosed()) return;
    this.heartbeat?.heard();
    const { reqId, what } = describeUnreadable(data);
    const error = new SwitchboardError("protocol", `the broker sent a frame the SDK cannot read (${what})`);
    this.calls.fail(reqId, error);
    this.events.emit("error", error);
  }

  private onSocketClosed(generation: number, code: number, reason: string): void {
    if (generation !== this.generation || this.state === "closed") return;
    this.connection = null;
    this.heartbeat?.stop();
    // The broker refused a frame as too large; re-sending it would loop
    // forever. The largest written is the likeliest: a call (rejected), or a
    // frame of acks (later ones are made smaller).
    if (code === 1009 && !this.calls.blameLargestOver(generation, this.acks.largestWritten) && this.acks.largestWritten > 0) {
      this.acks.frameTooLarge();
    }
    this.calls.dropped(generation);
    // Closing already (close() waits for its last acks): no reconnect.
    const willReconnect = this.closing === null && !isFinalCloseCode(code) && this.reconnector.enabled;
    if (!willReconnect) {
      // Ended before the event: a close() from a listener finds the client
      // closed, and neither fails the calls with its own code nor says so twice.
      const why = code === 4002 ? "revoked" : code === 4000 ? "replaced" : "closed";
      this.shutdown(new SwitchboardError(why, `connection closed (${code} ${reason})`));
      this.events.emit("close", { code, reason, willReconnect });
      return;
    }
    // No longer open while the close is told: a listener finds the client not
    // connected, and a call it makes waits for the next socket (a typing is
    // dropped). Its connectionState event still comes after the close event.
    this.state = "reconnecting";
    this.events.emit("close", { code, reason, willReconnect });
    // A listener may have called close(): that ends the client, nothing reconnects.
    if (this.ending()) return;
    this.events.emit("connectionState", "reconnecting");
    if (this.config.offline === "fail") {
      // Whether the broker applied them is unknown: the caller decides, nothing is re-sent behind its back.
      this.calls.failAll(new SwitchboardError("unavailable", `the connection dropped before the broker answered (${code})`));
    }
    this.reconnector.closed();
  }

  // A method, so TypeScript does not keep a narrowing of `state` across awaits.
  private isClosed(): boolean {
    return this.state === "closed";
  }

  /** Ended, or close() under way: nothing new starts, and no event tells of it. */
  private ending(): boolean {
    return this.isClosed() || this.closing !== null;
  }

  /** Final: no more sockets; everything pending fails with error. */
  private shutdown(error: SwitchboardError): void {
    if (this.state === "closed") return;
    this.setState("closed");
    this.typingTracker.dispose();
    this.reconnector.cancel();
    this.heartbeat?.stop();
    // close() closes the socket itself; every other path gets here without one.
    this.connection = null;
    this.acks.dispose();
    this.receiver.clear();
    this.calls.failAll(error);
    this.replies.failAll(error);
  }
}
