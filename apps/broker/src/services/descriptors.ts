// File descriptors: every socket, every database connection and, embedded,
// every file of the database holds one. Run out, and the server spins on
// accept() answering nobody (not even /health), and the embedded database,
// failing to create a file, kept failing every large send until a restart.
// So while fewer than a reserve are left, new sockets and requests are
// refused, and what is open (the peers, the database) goes on.
import type { Logger } from "../log.ts";
import { openDescriptors, openFilesLimit } from "../open-files.ts";

// Each count lists /proc/self/fd (open-files.ts). Sockets let in between
// counts are added to the last one.
const POLL_MS = 500;

/** What is kept back: an eighth of the limit, at least 64 and at most 1,024. */
export function descriptorReserve(limit: number): number {
  return Math.min(1024, Math.max(64, Math.floor(limit / 8)));
}

export class Descriptors {
  private open = 0;
  /** Sockets admitted since the last count, which it may not hold yet. */
  private admittedSinceCount = 0;
  private wasShort = false;
  private counting = false;
  private readonly timer: Timer;

  /** Open past this, fewer than the reserve are left. */
  private readonly ceiling: number;

  private constructor(
    private readonly limit: number,
    private readonly log: Logger,
  ) {
    this.ceiling = limit - descriptorReserve(limit);
    this.timer = setInterval(() => void this.count(), POLL_MS);
    this.timer.unref();
  }

  /** Watches this process's descriptors; null where they cannot be counted (not Linux, no /proc). */
  static async watch(log: Logger): Promise<Descriptors | null> {
    const limit = await openFilesLimit();
    if (limit === null || (await openDescriptors()) === "unreadable") return null;
    const descriptors = new Descriptors(limit, log);
    await descriptors.count();
    return descriptors;
  }

  /** Fewer than the reserve are left: refuse what would take one more. */
  get short(): boolean {
    return this.open + this.admittedSinceCount >= this.ceiling;
  }

  /**
   * Whether to refuse what would take one more, as `short`. The shortage is
   * logged by the first refusal: the sockets it turns away close before the
   * next count, which may then find none short and log nothing.
   */
  refusing(): boolean {
    const short = this.short;
    if (short) this.changed(true);
    return short;
  }

  /** A socket was let in. */
  admitted(): void {
    this.admittedSinceCount++;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async count(): Promise<void> {
    if (this.counting) return;
    this.counting = true;
    const admittedBefore = this.admittedSinceCount;
    try {
      const open = await openDescriptors();
      if (open === "unreadable") return;
      this.open = open === "none left" ? this.limit : open;
      this.admittedSinceCount -= admittedBefore;
    } finally {
      this.counting = false;
    }
    this.changed(this.short);
  }

  private changed(short: boolean): void {
    if (short === this.wasShort) return;
    const fields = { open: this.open, limit: this.limit, reserve: descriptorReserve(this.limit) };
    if (short) this.log.warn(fields, "descriptors short");
    else this.log.info(fields, "descriptors available");
    this.wasShort = short;
  }
}
