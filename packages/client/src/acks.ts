// Acks of pushes, batched: one client_ack frame for everything received within
// ackDelayMs, or at once when MAX_BATCH ids are waiting.
const MAX_BATCH = 200;
// The broker accepts at most 1000 ids in one client_ack.
const MAX_FRAME_IDS = 1000;

export class AckBatcher {
  private readonly waiting = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** send writes one client_ack frame and returns false when there is no open socket. */
  constructor(
    private readonly delayMs: number,
    private readonly send: (messageIds: string[]) => boolean,
  ) {}

  add(messageId: string): void {
    this.waiting.add(messageId);
    if (this.waiting.size >= MAX_BATCH) this.flush();
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
    for (let i = 0; i < ids.length; i += MAX_FRAME_IDS) {
      const chunk = ids.slice(i, i + MAX_FRAME_IDS);
      if (!this.send(chunk)) return;
      for (const id of chunk) this.waiting.delete(id);
    }
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting.clear();
  }
}
