// Acks of pushes, batched: one client_ack frame for everything received within
// ackDelayMs, or at once when a frame's worth is waiting (MAX_BATCH ids, fewer
// once a broker refused a frame as too large).
const MAX_BATCH = 200;
// The broker accepts at most 1000 ids in one client_ack.
const MAX_FRAME_IDS = 1000;

export class AckBatcher {
  private readonly waiting = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Ids per frame: fewer once the broker closed a socket for an ack frame too large (its MAX_MESSAGE_BYTES is small). */
  private frameIds = MAX_FRAME_IDS;
  /** The largest frame written since connected(): its length and how many ids it held. */
  private largest = { length: 0, ids: 0 };

  /** send writes one client_ack frame and returns its length, or null when there is no open socket. */
  constructor(
    private readonly delayMs: number,
    private readonly send: (messageIds: string[]) => number | null,
  ) {}

  add(messageId: string): void {
    this.waiting.add(messageId);
    if (this.waiting.size >= Math.min(MAX_BATCH, this.frameIds)) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.delayMs);
  }

  get pending(): number {
    return this.waiting.size;
  }

  /** Sends what is waiting. Ids that could not be sent stay for the next flush (after a reconnect). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const ids = [...this.waiting];
    for (let i = 0; i < ids.length; i += this.frameIds) {
      const chunk = ids.slice(i, i + this.frameIds);
      const length = this.send(chunk);
      if (length === null) return;
      if (length > this.largest.length) this.largest = { length, ids: chunk.length };
      for (const id of chunk) this.waiting.delete(id);
    }
  }

  /** A new socket: what was written on the last one no longer matters. */
  connected(): void {
    this.largest = { length: 0, ids: 0 };
  }

  /** The length of the largest ack frame written on this socket (0: none). */
  get largestWritten(): number {
    return this.largest.length;
  }

  /** The broker closed the socket (1009) for that frame: from now on frames hold half as many ids. */
  frameTooLarge(): void {
    this.frameIds = Math.max(1, Math.floor(this.largest.ids / 2));
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting.clear();
  }
}
