// A WebSocket client on a plain TCP socket, for tests that need what a
// browser-like client cannot do: stop reading (so the broker meets real TCP
// backpressure), send bytes no well-behaved client would, and see every
// frame and the close exactly as they arrive.
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";

export interface RawClose {
  code: number;
  reason: string;
}

const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;

export class RawWebSocket {
  /** Text messages received, in order. */
  readonly messages: string[] = [];
  /** The close frame's code and reason; 1006, as a browser says it, when the connection ended without one. */
  close: RawClose | null = null;
  private buffer = Buffer.alloc(0);
  private readonly waiters = new Set<() => void>();
  readonly ended: Promise<void>;

  private constructor(private readonly socket: Socket) {
    this.ended = new Promise((resolve) => {
      socket.on("close", () => {
        // Whatever it read came first: a close frame, if one came, is set.
        this.close ??= { code: 1006, reason: "the connection ended without a close frame" };
        resolve();
        this.wake();
      });
    });
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => {});
  }

  /**
   * Opens a connection and completes the upgrade; `headers` are added to the
   * request. A server that neither upgrades nor refuses within `timeoutMs`
   * fails it with RawUpgradeUnanswered: a caller's wait is bounded by it.
   */
  static async open(url: string, headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<RawWebSocket> {
    const target = new URL(url);
    const socket = connect({ host: target.hostname, port: Number(target.port) });
    let timer: Timer | undefined;
    const unanswered = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        socket.destroy();
        reject(new RawUpgradeUnanswered(timeoutMs));
      }, timeoutMs);
    });
    try {
      const head = await Promise.race([RawWebSocket.upgrade(socket, target, headers), unanswered]);
      if (head.status !== 101) {
        socket.destroy();
        throw new RawUpgradeRefused(head.status);
      }
      const ws = new RawWebSocket(socket);
      if (head.rest.length > 0) ws.onData(head.rest);
      return ws;
    } finally {
      clearTimeout(timer);
    }
  }

  private static async upgrade(socket: Socket, target: URL, headers: Record<string, string>): Promise<{ status: number; rest: Buffer }> {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const key = randomBytes(16).toString("base64");
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    socket.write(
      `GET ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    );
    return await new Promise((resolve, reject) => {
      let got = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        const end = got.indexOf("\r\n\r\n");
        if (end < 0) return;
        socket.off("data", onData);
        const status = Number(got.subarray(0, end).toString("latin1").split(" ")[1]);
        resolve({ status, rest: got.subarray(end + 4) });
      };
      socket.on("data", onData);
      socket.once("close", () => reject(new Error("closed during the upgrade")));
    });
  }

  sendText(text: string): void {
    this.sendFrame(OP_TEXT, Buffer.from(text, "utf8"));
  }

  sendBinary(bytes: Uint8Array): void {
    this.sendFrame(OP_BINARY, Buffer.from(bytes));
  }

  /** A text frame of these bytes as they are, UTF-8 or not (a browser never sends one that is not). */
  sendTextBytes(bytes: Uint8Array): void {
    this.sendFrame(OP_TEXT, Buffer.from(bytes));
  }

  sendJson(value: unknown): void {
    this.sendText(JSON.stringify(value));
  }

  /** Stops reading from the socket: the broker's writes back up in TCP. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** A close frame (1000) right behind whatever was written, then the end of the stream: a peer leaving cleanly. */
  closeNormally(): void {
    const code = Buffer.alloc(2);
    code.writeUInt16BE(1000);
    this.sendFrame(OP_CLOSE, code);
    this.socket.end();
  }

  /** Waits until check() returns a value, a frame arrives that makes it, or the socket ends. */
  async waitFor<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = check();
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 1000));
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(done);
      });
    }
  }

  private wake(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const w of waiting) w();
  }

  private sendFrame(opcode: number, payload: Buffer): void {
    const mask = randomBytes(4);
    const length = payload.length;
    const header =
      length < 126
        ? Buffer.from([0x80 | opcode, 0x80 | length])
        : length < 65536
          ? Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 126]), u16(length)])
          : Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 127]), u64(length)]);
    const masked = Buffer.alloc(length);
    for (let i = 0; i < length; i++) masked[i] = payload[i]! ^ mask[i % 4]!;
    this.socket.write(Buffer.concat([header, mask, masked]));
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const frame = parseFrame(this.buffer);
      if (!frame) break;
      this.buffer = this.buffer.subarray(frame.size);
      if (frame.opcode === OP_TEXT) this.messages.push(frame.payload.toString("utf8"));
      else if (frame.opcode === OP_CLOSE) {
        const code = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005;
        this.close = { code, reason: frame.payload.subarray(2).toString("utf8") };
      } else if (frame.opcode === OP_PING) this.sendFrame(0xa, frame.payload);
    }
    this.wake();
  }
}

export class RawUpgradeRefused extends Error {
  constructor(readonly status: number) {
    super(`the upgrade was refused with HTTP ${status}`);
  }
}

export class RawUpgradeUnanswered extends Error {
  constructor(readonly timeoutMs: number) {
    super(`the server neither upgraded nor refused the connection in ${timeoutMs} ms`);
  }
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** One unmasked server frame at the start of buf, or null when it is not complete yet. */
function parseFrame(buf: Buffer): { opcode: number; payload: Buffer; size: number } | null {
  if (buf.length < 2) return null;
  const opcode = buf[0]! & 0x0f;
  let length = buf[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buf.length < 4) return null;
    length = buf.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buf.length < 10) return null;
    length = Number(buf.readBigUInt64BE(2));
    offset = 10;
  }
  if (buf.length < offset + length) return null;
  return { opcode, payload: buf.subarray(offset, offset + length), size: offset + length };
}
