// Acks of pushes, batched: one client_ack frame for everything received within
// ackDelayMs, or at once when a frame's worth is waiting (MAX_BATCH ids, fewer
// where the broker's frame limit holds fewer, or once a broker that did not
// tell its limit refused a frame as too large).
const MAX_BATCH = 200;
// The broker accepts at most 1000 ids in one client_ack.
const MAX_FRAME_IDS = 1000;
// {"type":"client_ack","messageIds":[]} and a reqId's worth of slack; each id adds its quotes and a comma.
const FRAME_OVERHEAD_BYTES = 64;
const ID_OVERHEAD_BYTES = 3;

export class AckBatcher {
  private readonly waiting = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Ids per frame: fewer once the broker closed a socket for an ack frame too large (its MAX_MESSAGE_BYTES is small). */
  private frameIds = MAX_FRAME_IDS;
  /** The broker's frame limit on this socket (its hello_ack), if it told it. */
  private maxFrameBytes: number | undefined;
  /** delayMs, or a third of the broker's lease when its hello_ack told one that is shorter. */
  private currentDelayMs: number;
  /** The largest frame written since connected(): its length and how many ids it held. */
  private largest = { length: 0, ids: 0 };

  /** send writes one client_ack frame and returns its length, or null when there is no open socket. */
  constructor(
    private readonly delayMs: number,
    private readonly send: (messageIds: string[]) => number | null,
  ) {
    this.currentDelayMs = delayMs;
  }

  add(messageId: string): void {
    this.waiting.add(messageId);
    if (this.waiting.size >= Math.min(MAX_BATCH, this.frameIds)) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.currentDelayMs);
  }

  get pending(): number {
    return this.waiting.size;
  }

  /** Sends what is waiting. Ids that could not be sent stay for the next flush (after a reconnect). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const chunk of this.frames([...this.waiting])) {
      const length = this.send(chunk);
      if (length === null) return;
      if (length > this.largest.length) this.largest = { length, ids: chunk.length };
      for (const id of chunk) this.waiting.delete(id);
    }
  }

  /** The ids in frames of at most frameIds ids, each within the broker's frame limit when it is known. */
  private frames(ids: string[]): string[][] {
    const budget = this.maxFrameBytes === undefined ? Number.POSITIVE_INFINITY : this.maxFrameBytes - FRAME_OVERHEAD_BYTES;
    const frames: string[][] = [];
    let frame: string[] = [];
    let bytes = 0;
    for (const id of ids) {
      const size = id.length + ID_OVERHEAD_BYTES;
      if (frame.length > 0 && (frame.length >= this.frameIds || bytes + size > budget)) {
        frames.push(frame);
        frame = [];
        bytes = 0;
      }
      frame.push(id);
      bytes += size;
    }
    if (frame.length > 0) frames.push(frame);
    return frames;
  }

  /**
   * A new socket, with the broker's frame limit and lease if its hello_ack
   * told them: what was written on the last one no longer matters. An ack held
   * past the lease would come after the broker pushed the message again, so
   * acks wait at most a third of it (as MAX_ACK_DELAY_MS is of the default).
   */
  connected(maxFrameBytes?: number, leaseSeconds?: number): void {
    this.largest = { length: 0, ids: 0 };
    this.maxFrameBytes = maxFrameBytes;
    this.currentDelayMs = leaseSeconds === undefined ? this.delayMs : Math.min(this.delayMs, (leaseSeconds * 1000) / 3);
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
