// Peers gone silent without a close: a laptop asleep, a NAT that forgot the
// connection, a frozen process. The server's own idle timeout counts what
// the broker writes as activity, so a socket it keeps writing to (a lease's
// redelivery, presence events) never timed out, and its presence lived on,
// holding the member's messages. Here only what the peer sends counts: quiet
// for half the bound, it is pinged, which every WebSocket answers by itself;
// quiet for the whole bound, its connection is dropped, and its presence
// ends as at any close.
import type { Socket } from "./connection.ts";

export interface SilentSocketsOptions {
  silenceMs: number;
  clock: () => number;
  /** The connection is about to be dropped: nothing came from it for quietMs. */
  dropping(ws: Socket, quietMs: number): void;
}

export class SilentSockets {
  private readonly timer: Timer;
  private readonly intervalMs: number;
  private lastCheckAt: number;

  constructor(
    private readonly sockets: ReadonlySet<Socket>,
    private readonly options: SilentSocketsOptions,
  ) {
    // A quarter of the bound: a silent peer is dropped within 1.25 of it.
    this.intervalMs = Math.max(100, options.silenceMs / 4);
    this.lastCheckAt = options.clock();
    this.timer = setInterval(() => this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const now = this.options.clock();
    // The broker itself stood still (a paused machine, a long turn of the
    // event loop): what its peers sent meanwhile is still unread, and is read
    // after this check. Nobody is dropped; each is pinged afresh.
    const stalled = now - this.lastCheckAt > 2 * this.intervalMs;
    this.lastCheckAt = now;
    for (const ws of this.sockets) {
      if (ws.data.closed) continue;
      // Not read while the broker catches up with its frames (pipeline.ts),
      // nor writable while it holds unsent data (STALLED_PRESENCE_SECONDS
      // bounds that): the quiet, pongs included, would be the broker's.
      if (ws.isPaused || ws.getBufferedAmount() > 0) {
        ws.data.heardAt = now;
        continue;
      }
      if (stalled) ws.data.heardAt = Math.max(ws.data.heardAt, now - this.options.silenceMs / 2);
      const quietMs = now - ws.data.heardAt;
      if (quietMs >= this.options.silenceMs) {
        this.options.dropping(ws, quietMs);
        ws.data.closed = true;
        ws.terminate();
      } else if (quietMs >= this.options.silenceMs / 2 && ws.data.pingedAt <= ws.data.heardAt) {
        // A ping the socket dropped (0) is tried again at the next check.
        if (ws.ping() !== 0) ws.data.pingedAt = now;
      }
    }
  }
}
