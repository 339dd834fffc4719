// Frames of one connection are handled strictly in arrival order (the
// protocol promises it): each step is chained behind the previous one, so a
// send right behind a hello waits for it. Durable sends and acks may overlap:
// they enter their group commit in order without waiting for the previous
// commit, so the next frame can join the same batch. Any other frame waits
// for them first, so its effects still come after theirs.
//
// What a connection has read but not finished is bounded: past the limits in
// frames or bytes the socket stops reading (the peer sees TCP backpressure),
// and reads again once half of it is done. So is what all connections of the
// instance have read: past the instance's budget, a connection that reads
// more pauses until the budget is half free again.

// Frames that arrive together (one read of a socket may hold hundreds) are
// handled back to back without the event loop taking a turn: a flood on one
// connection would hold every other socket's frames, pushes and timers
// behind it. Past a slice of such work (InflightLimits.sliceMs), the next
// frame waits for a turn of the event loop. Between turns nothing waits: at
// low load no frame does.
let sliceStart: number | null = null;

/** Resolves at once within a slice; past it, after the event loop has had a turn. */
async function takeTurn(sliceMs: number): Promise<void> {
  const now = performance.now();
  if (sliceStart === null) {
    sliceStart = now;
    setImmediate(() => (sliceStart = null));
    return;
  }
  if (now - sliceStart < sliceMs) return;
  await new Promise((resolve) => setImmediate(resolve));
}

export interface InflightLimits {
  frames: number;
  bytes: number;
  /** How long frames may be handled back to back before the event loop takes a turn. */
  sliceMs: number;
}

/** Bytes read and not finished, over every connection of the instance. */
export class InflightBudget {
  private used = 0;
  private readonly waiting = new Set<FramePipeline>();

  constructor(readonly limit: number) {}

  get bytes(): number {
    return this.used;
  }

  /** Counts the bytes; true when the instance is over its budget. */
  take(bytes: number): boolean {
    this.used += bytes;
    return this.used > this.limit;
  }

  /**
   * Counts a request body's bytes unless the instance would then hold more
   * than half its budget (false, nothing counted): paused sockets resume only
   * below half, so bodies held past it (a `?wait` send's, a slow upload)
   * would keep them unread for as long as the requests last.
   */
  takeBody(bytes: number): boolean {
    if (this.used + bytes > this.limit / 2) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
    if (this.waiting.size === 0 || this.used > this.limit / 2) return;
    const resumed = [...this.waiting];
    this.waiting.clear();
    for (const pipeline of resumed) pipeline.budgetFreed();
  }

  wait(pipeline: FramePipeline): void {
    this.waiting.add(pipeline);
  }

  forget(pipeline: FramePipeline): void {
    this.waiting.delete(pipeline);
  }
}

/** The socket's reading, as the pipeline needs it. */
export interface Reader {
  pause(): void;
  resume(): void;
  readonly isPaused: boolean;
}

export interface StepContext {
  /** Lets work run on while later steps start; the frame stays counted until it is done. */
  overlap(work: Promise<void>): void;
  /** Waits for all overlapping work of earlier frames. */
  settled(): Promise<void>;
}

export class FramePipeline {
  private tail: Promise<void> = Promise.resolve();
  private readonly overlapping = new Set<Promise<void>>();
  private frames = 0;
  private bytes = 0;
  /** Paused for this connection's own limits, or for the instance's budget. */
  private pausedForSelf = false;
  private pausedForBudget = false;
  private reader: Reader | null = null;

  constructor(
    private readonly limits: InflightLimits,
    private readonly budget: InflightBudget,
  ) {}

  /** The socket, once it is open. */
  attach(reader: Reader): void {
    this.reader = reader;
  }

  /** The socket closed: it waits for nothing any more. */
  detach(): void {
    this.budget.forget(this);
    this.reader = null;
  }

  /** Settles once every frame read so far is handled, overlapping work included. */
  async finished(): Promise<void> {
    await this.tail;
    await Promise.all(this.overlapping);
  }

  /** Settles once the overlapping work begun so far is done (not work begun later). */
  async underWay(): Promise<void> {
    await Promise.all(this.overlapping);
  }

  /** The instance's budget is half free again. */
  budgetFreed(): void {
    this.pausedForBudget = false;
    this.updateReading();
  }

  get inflight(): { frames: number; bytes: number } {
    return { frames: this.frames, bytes: this.bytes };
  }

  /**
   * Runs the step for a frame after every earlier frame's step; a step that
   * throws is handed to onError and the chain goes on. The frame counts by its
   * bytes on the wire, which bound what its text holds in memory (a character
   * of a string counted by length may take two bytes here and three on the wire).
   */
  next(frame: string | Uint8Array, step: (ctx: StepContext) => Promise<void>, onError: (error: unknown) => void): void {
    const size = typeof frame === "string" ? Buffer.byteLength(frame, "utf8") : frame.byteLength;
    this.take(size);
    this.tail = this.tail.then(async () => {
      let overlapped: Promise<void> | null = null;
      try {
        await takeTurn(this.limits.sliceMs);
        await step({
          overlap: (work) => {
            overlapped = work;
            this.overlapping.add(work);
            const done = () => {
              this.overlapping.delete(work);
              this.give(size);
            };
            work.then(done, done);
          },
          settled: async () => {
            await Promise.all(this.overlapping);
          },
        });
      } catch (error) {
        onError(error);
      } finally {
        if (overlapped === null) this.give(size);
      }
    });
  }

  private take(size: number): void {
    this.frames++;
    this.bytes += size;
    if (this.budget.take(size) && !this.pausedForBudget) {
      this.pausedForBudget = true;
      this.budget.wait(this);
    }
    if (this.frames > this.limits.frames || this.bytes > this.limits.bytes) this.pausedForSelf = true;
    this.updateReading();
  }

  private give(size: number): void {
    this.frames--;
    this.bytes -= size;
    this.budget.give(size);
    if (this.frames <= this.limits.frames / 2 && this.bytes <= this.limits.bytes / 2) this.pausedForSelf = false;
    this.updateReading();
  }

  private updateReading(): void {
    const pause = this.pausedForSelf || this.pausedForBudget;
    if (!this.reader) return;
    if (pause && !this.reader.isPaused) this.reader.pause();
    else if (!pause && this.reader.isPaused) this.reader.resume();
  }
}
