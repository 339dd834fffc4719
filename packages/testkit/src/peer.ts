// A raw-frame WebSocket client for the broker's integration tests. Not the
// SDK: it sends exactly the frames a test asks for, records every frame it
// receives in arrival order, and offers a few explicit ways to wait for them.
// (Over 300 lines: one class with its connect, send and wait helpers, which
// the tests read as one vocabulary.)
import { generateKeypair, signHello } from "@switchboard/protocol";

export type Frame = Record<string, unknown>;
export type FramePredicate = (frame: Frame) => boolean;

export interface TestIdentity {
  secretKey: string;
  publicKey: string;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

export interface ConnectOptions {
  identity: TestIdentity;
  meshId: string;
  /** Default: a random UUID. */
  sessionId?: string;
  pid?: number;
  cwd?: string;
  displayName?: string;
  /** Signed timestamp; default Date.now(). */
  timestamp?: number;
  /** Send a JWT hello with this token instead of a signed one. */
  jwt?: string;
  /** Sign the hello for this broker name too (audience and audienceSignature). */
  audience?: string;
  /** Send a signed hello and wait for its answer (default true). */
  hello?: boolean;
  /** Merged over the signed hello frame before sending (to tamper with it). */
  helloOverrides?: Record<string, unknown>;
  /** Send a client_ack for each push as it arrives (default false). */
  autoAck?: boolean;
  /** For the open and the hello answer together (default 10 000). */
  timeoutMs?: number;
}

export interface SendOptions {
  priority?: string;
  id?: string;
  ttlSeconds?: number;
  replyTo?: string;
  ephemeral?: boolean;
  nonce?: string;
  ciphertext?: string;
}

/** A failed connect or wait. `code` is the broker's error code, `closeCode` the socket's close code. */
export class PeerError extends Error {
  code?: string;
  closeCode?: number;
  closeReason?: string;
  frame?: Frame;
  frames: Frame[] = [];

  constructor(message: string, fields: Partial<Pick<PeerError, "code" | "closeCode" | "closeReason" | "frame" | "frames">> = {}) {
    super(message);
    this.name = "PeerError";
    Object.assign(this, fields);
  }
}

export async function newIdentity(): Promise<TestIdentity> {
  const { secretKey, publicKey } = await generateKeypair();
  return { secretKey, publicKey };
}

/** A signed hello frame (with a fresh reqId) for the given identity, as a peer would send it. */
export async function buildHello(
  options: Pick<ConnectOptions, "identity" | "meshId" | "sessionId" | "pid" | "cwd" | "displayName" | "timestamp" | "helloOverrides" | "jwt" | "audience">,
): Promise<Frame> {
  const sessionId = options.sessionId ?? crypto.randomUUID();
  const credential =
    options.jwt === undefined
      ? await signHello(options.identity.secretKey, {
          meshId: options.meshId,
          sessionId,
          timestamp: options.timestamp ?? Date.now(),
          ...(options.audience === undefined ? {} : { audience: options.audience }),
        })
      : { meshId: options.meshId, pubkey: options.identity.publicKey, sessionId, jwt: options.jwt };
  const frame: Frame = { type: "hello", reqId: newReqId(), ...credential };
  if (options.pid !== undefined) frame.pid = options.pid;
  if (options.cwd !== undefined) frame.cwd = options.cwd;
  if (options.displayName !== undefined) frame.displayName = options.displayName;
  return { ...frame, ...options.helloOverrides };
}

export function newReqId(): string {
  return `r-${crypto.randomUUID()}`;
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function describeFrames(frames: Frame[]): string {
  if (frames.length === 0) return "no frames received";
  const shown = frames.slice(-20).map((f) => {
    const text = JSON.stringify(f);
    return text.length > 300 ? `${text.slice(0, 300)}…` : text;
  });
  const skipped = frames.length - shown.length;
  return `${frames.length} frame(s) received${skipped > 0 ? ` (last ${shown.length} shown)` : ""}:\n  ${shown.join("\n  ")}`;
}

function parseFrame(data: unknown): Frame {
  const text =
    typeof data === "string"
      ? data
      : data instanceof ArrayBuffer
        ? new TextDecoder().decode(data)
        : data instanceof Uint8Array
          ? new TextDecoder().decode(data)
          : String(data);
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as Frame;
  } catch {
    // fall through
  }
  return { type: "__unparsable", raw: text };
}

type Waiter = () => void;

export class TestPeer {
  /** Every frame received, parsed, in arrival order (non-JSON frames as {type:"__unparsable", raw}). */
  readonly frames: Frame[] = [];
  /** Resolves once the socket is closed (never rejects). */
  readonly closed: Promise<CloseInfo>;
  closeInfo?: CloseInfo;
  /** The broker's hello_ack, when the hello succeeded. */
  helloAck?: Frame;
  /** The hello frame this peer sent (e.g. to replay it on another connection). */
  helloFrame?: Frame;
  readonly identity: TestIdentity;
  readonly meshId: string;
  readonly sessionId: string;

  private readonly ws: WebSocket;
  private readonly consumed = new Set<Frame>();
  private readonly waiters = new Set<Waiter>();
  private autoAck = false;

  private constructor(ws: WebSocket, options: ConnectOptions, sessionId: string) {
    this.ws = ws;
    this.identity = options.identity;
    this.meshId = options.meshId;
    this.sessionId = sessionId;
    this.autoAck = options.autoAck ?? false;
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (event) => {
      const frame = parseFrame(event.data);
      this.frames.push(frame);
      if (this.autoAck && frame.type === "push" && typeof frame.messageId === "string") this.ack([frame.messageId]);
      this.wake();
    });
    this.closed = new Promise<CloseInfo>((resolve) => {
      ws.addEventListener("close", (event) => {
        this.closeInfo = { code: event.code, reason: event.reason };
        resolve(this.closeInfo);
        this.wake();
      });
    });
  }

  static async connect(wsUrl: string, options: ConnectOptions): Promise<TestPeer> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const sessionId = options.sessionId ?? crypto.randomUUID();
    const peer = new TestPeer(new WebSocket(wsUrl), options, sessionId);
    const deadline = Date.now() + timeoutMs;

    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        peer.ws.close();
        reject(new PeerError(`timed out after ${timeoutMs} ms waiting for WebSocket ${wsUrl} to open`));
      }, timeoutMs);
      peer.ws.addEventListener("open", () => {
        clearTimeout(timer);
        resolve();
      });
      void peer.closed.then((info) => {
        clearTimeout(timer);
        reject(
          new PeerError(`WebSocket ${wsUrl} closed before opening (${info.code} ${info.reason})`, {
            closeCode: info.code,
            closeReason: info.reason,
          }),
        );
      });
    });
    if (options.hello === false) return peer;

    const hello = await buildHello({ ...options, sessionId });
    peer.helloFrame = hello;
    const start = peer.frames.length;
    peer.sendFrame(hello);
    let answer: Frame;
    try {
      answer = await peer.waitFor(
        () => peer.frames.slice(start).find((f) => f.type === "hello_ack" || f.type === "error"),
        Math.max(deadline - Date.now(), 1),
        "a hello_ack or error answering the hello",
      );
    } catch (err) {
      await peer.close();
      throw err;
    }
    peer.consumed.add(answer);
    if (answer.type === "hello_ack") {
      peer.helloAck = answer;
      return peer;
    }
    // The broker sends the error, then closes with 1008: wait briefly for the close to report it too.
    const info = await peer.closeWithin(2_000);
    const code = typeof answer.code === "string" ? answer.code : undefined;
    throw new PeerError(`hello refused: ${code ?? "?"} (${String(answer.message)}); closed ${info.code} ${info.reason}`, {
      code,
      closeCode: info.code,
      closeReason: info.reason,
      frame: answer,
      frames: [...peer.frames],
    });
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  sendFrame(frame: object): void {
    this.ws.send(JSON.stringify(frame));
  }

  sendRaw(text: string): void {
    this.ws.send(text);
  }

  /** A binary frame of these bytes, as a client may write one. */
  sendBinary(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }

  /** Sends frame (with a fresh reqId unless it has one) and resolves with the first later frame carrying that reqId. */
  async request(frame: object, timeoutMs = 10_000): Promise<Frame> {
    const record = frame as Frame;
    const reqId = typeof record.reqId === "string" ? record.reqId : newReqId();
    const start = this.frames.length;
    this.sendFrame({ ...record, reqId });
    const reply = await this.waitFor(
      () => this.frames.slice(start).find((f) => f.reqId === reqId && !this.consumed.has(f)),
      timeoutMs,
      `a reply with reqId ${reqId} to ${String(record.type)}`,
    );
    this.consumed.add(reply);
    return reply;
  }

  /** A `send` frame through request(): resolves with the broker's ack or error. */
  send(targetSpec: string, opts: SendOptions = {}): Promise<Frame> {
    const frame: Frame = {
      type: "send",
      targetSpec,
      nonce: opts.nonce ?? `n-${randomHex(8)}`,
      ciphertext: opts.ciphertext ?? Buffer.from(`message ${randomHex(8)}`).toString("base64"),
    };
    for (const key of ["priority", "id", "ttlSeconds", "replyTo", "ephemeral"] as const) {
      if (opts[key] !== undefined) frame[key] = opts[key];
    }
    return this.request(frame);
  }

  /**
   * The first frame matching predicate (or of that `type`, given a string) that no earlier
   * request/nextFrame/waitForPushes returned; waits for it if it has not arrived yet.
   */
  async nextFrame(predicate: FramePredicate | string, timeoutMs = 10_000): Promise<Frame> {
    const match: FramePredicate = typeof predicate === "string" ? (f) => f.type === predicate : predicate;
    const what = typeof predicate === "string" ? `a "${predicate}" frame` : "a frame matching the predicate";
    const frame = await this.waitFor(() => this.frames.find((f) => !this.consumed.has(f) && match(f)), timeoutMs, what);
    this.consumed.add(frame);
    return frame;
  }

  pushes(): Frame[] {
    return this.frames.filter((f) => f.type === "push");
  }

  /** Resolves with all pushes received so far once there are at least n. */
  async waitForPushes(n: number, timeoutMs = 10_000): Promise<Frame[]> {
    const pushes = await this.waitFor(
      () => {
        const all = this.pushes();
        return all.length >= n ? all : undefined;
      },
      timeoutMs,
      `${n} push frame(s)`,
    );
    for (const p of pushes) this.consumed.add(p);
    return pushes;
  }

  ack(messageIds: string[]): void {
    this.sendFrame({ type: "client_ack", messageIds });
  }

  /** Closes the socket (default code 1000) and waits for the close event. */
  async close(code?: number, reason?: string): Promise<CloseInfo> {
    if (this.closeInfo) return this.closeInfo;
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close(code ?? 1000, reason);
    }
    return this.closed;
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Waits up to ms for the close event, closing from our side if the broker has not. */
  private async closeWithin(ms: number): Promise<CloseInfo> {
    let timer: Timer | undefined;
    const early = await Promise.race([
      this.closed,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
    clearTimeout(timer);
    return early ?? this.close();
  }

  /** Resolves with check()'s first defined result, re-checking on every frame; rejects on timeout or close. */
  private waitFor<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fail = (message: string) => {
        cleanup();
        reject(
          new PeerError(`${message}; ${describeFrames(this.frames)}`, {
            closeCode: this.closeInfo?.code,
            closeReason: this.closeInfo?.reason,
            frames: [...this.frames],
          }),
        );
      };
      const waiter: Waiter = () => {
        const found = check();
        if (found !== undefined) {
          cleanup();
          resolve(found);
        } else if (this.closeInfo) {
          fail(`connection closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for ${what}`);
        }
      };
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms waiting for ${what}`), timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      waiter();
    });
  }
}

/** The peers a test file connects, closed together when it is done. */
export class PeerPool {
  readonly peers: TestPeer[] = [];

  async connect(
    wsUrl: string,
    member: { identity: TestIdentity },
    meshId: string,
    options: Partial<ConnectOptions> = {},
  ): Promise<TestPeer> {
    const peer = await TestPeer.connect(wsUrl, { identity: member.identity, meshId, ...options });
    this.peers.push(peer);
    return peer;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.peers.splice(0).map((p) => p.close()));
  }
}
