// One WebSocket and its hello handshake. Open resolves on hello_ack and rejects
// with SwitchboardError(code) on a refused hello, a socket that never opened
// ("unreachable"), one that closed mid-handshake ("closed") or a timeout.
// After the handshake every frame and the close go to the handlers.
import { HELLO_ERROR_CODES, shownUrl } from "@switchboard/protocol";
import { SwitchboardError } from "./errors.ts";
import { describeUnreadable, parseServerFrame, type HelloAckFrame, type ServerFrame } from "./wire.ts";
import type { WebSocketClass, WebSocketLike } from "./types.ts";
import { pathHint } from "./url.ts";

export interface ConnectionHandlers {
  onFrame(frame: ServerFrame): void;
  onInvalidFrame(data: unknown): void;
  onClose(code: number, reason: string): void;
}

export interface OpenParams {
  url: string;
  WebSocket: WebSocketClass;
  hello: Record<string, unknown>;
  timeoutMs: number;
  generation: number;
  /** Aborted: the attempt fails with `closed`, its socket closed (a hello under way is left unanswered). */
  signal?: AbortSignal;
  handlers: ConnectionHandlers;
}

const helloCodes: ReadonlySet<string> = new Set(HELLO_ERROR_CODES);

export class Connection {
  private closeWaiters: Array<() => void> = [];
  private isClosed = false;
  /** Given up by abandon(): its close, whenever it comes, is not reported again. */
  private abandoned = false;
  private onClose: ((code: number, reason: string) => void) | null = null;

  private constructor(
    private readonly ws: WebSocketLike,
    readonly generation: number,
  ) {}

  static open(params: OpenParams): Promise<{ connection: Connection; ack: HelloAckFrame }> {
    return new Promise((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = new params.WebSocket(params.url);
      } catch (error) {
        reject(new SwitchboardError("unreachable", `cannot open ${shownUrl(params.url)}`, { cause: error }));
        return;
      }
      const connection = new Connection(ws, params.generation);
      let state: "opening" | "hello" | "ready" | "failed" = "opening";
      let refusal: SwitchboardError | undefined;

      const fail = (error: SwitchboardError) => {
        if (state === "ready" || state === "failed") return;
        state = "failed";
        clearTimeout(timer);
        reject(error);
        if (ws.readyState === ws.CONNECTING || ws.readyState === ws.OPEN) ws.close();
      };
      const timer = setTimeout(
        () => fail(new SwitchboardError("timeout", `no hello answer from ${shownUrl(params.url)} within ${params.timeoutMs} ms`)),
        params.timeoutMs,
      );
      const abort = () => fail(new SwitchboardError("closed", "the client was closed while connecting"));
      if (params.signal?.aborted) abort();
      params.signal?.addEventListener("abort", abort, { once: true });

      ws.addEventListener("open", () => {
        if (state !== "opening") return;
        state = "hello";
        ws.send(JSON.stringify(params.hello));
      });
      ws.addEventListener("message", (event) => {
        const frame = parseServerFrame(event.data);
        if (state === "ready") {
          if (frame) params.handlers.onFrame(frame);
          else params.handlers.onInvalidFrame(event.data);
          return;
        }
        if (state !== "hello") return;
        if (!frame) {
          // The answer to the hello came, in a shape this SDK does not know (a
          // newer broker's): waiting on would end only in a timeout that hides it.
          fail(new SwitchboardError("protocol", `the broker answered the hello with a frame the SDK cannot read (${describeUnreadable(event.data).what})`));
          return;
        }
        if (frame.type === "hello_ack") {
          state = "ready";
          connection.onClose = params.handlers.onClose;
          clearTimeout(timer);
          resolve({ connection, ack: frame });
        } else if (frame.type === "error") {
          // The broker closes with 1008 right after; report the code now.
          // The code is the error's own: the message says what the broker said.
          refusal = new SwitchboardError(frame.code, `hello refused: ${frame.message}`);
          fail(refusal);
        }
      });
      ws.addEventListener("close", (event) => {
        if (connection.abandoned) return;
        connection.isClosed = true;
        for (const wake of connection.closeWaiters.splice(0)) wake();
        if (state === "ready") {
          params.handlers.onClose(event.code, event.reason);
          return;
        }
        if (state === "opening") {
          fail(new SwitchboardError("unreachable", `cannot connect to ${shownUrl(params.url)} (${event.code})${pathHint(params.url)}`));
        } else if (helloCodes.has(event.reason)) {
          fail(new SwitchboardError(event.reason, `hello refused: ${event.reason}`));
        } else {
          fail(new SwitchboardError("closed", `closed during the hello (${event.code} ${event.reason})`));
        }
      });
      // A failed connect also fires "close", which carries the outcome.
      ws.addEventListener("error", () => {});
    });
  }

  /** Writes one frame; false when the socket is not open (the caller keeps the frame for later). */
  send(text: string): boolean {
    if (this.isClosed || this.ws.readyState !== this.ws.OPEN) return false;
    this.ws.send(text);
    return true;
  }

  /**
   * Gives the socket up at once, as closed with `code` and `reason`: its
   * close handshake may never complete (the network it went over is silent),
   * so nothing waits for it, and its close event is not reported again.
   */
  abandon(code: number, reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.abandoned = true;
    for (const wake of this.closeWaiters.splice(0)) wake();
    if (this.ws.readyState === this.ws.CONNECTING || this.ws.readyState === this.ws.OPEN) this.ws.close();
    this.terminate();
    this.onClose?.(code, reason);
  }

  /**
   * Drops the connection without its close handshake where the runtime can
   * (Bun's WebSocket, the ws package's): a handshake the silent peer never
   * completes would keep the process alive long after the client ended.
   * A browser's WebSocket has no such call, nor a process to keep.
   */
  private terminate(): void {
    const { ws } = this;
    if ("terminate" in ws && typeof ws.terminate === "function") ws.terminate();
  }

  /** Closes and waits for the close event (at most waitMs; then the connection is dropped). */
  close(code = 1000, reason = "", waitMs = 2000): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.terminate();
        resolve();
      }, waitMs);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      if (this.ws.readyState === this.ws.CONNECTING || this.ws.readyState === this.ws.OPEN) this.ws.close(code, reason);
    });
  }
}
