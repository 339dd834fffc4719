// File descriptors: every socket, every database connection and, embedded,
// every file of the database holds one. Run out, and the server spins on
// accept() answering nobody (not even /health), and the embedded database,
// failing to create a file, kept failing every large send until a restart.
// So while fewer than a reserve are left, new sockets and requests are
// refused, and what is open (the peers, the database) goes on.
import { readdir, readFile } from "node:fs/promises";
import type { Logger } from "../log.ts";

// Each count lists /proc/self/fd: about 12 ms of a core with 10,000 sockets
// open. Sockets let in between counts are added to the last one.
const POLL_MS = 500;

/** What is kept back: an eighth of the limit, at least 64 and at most 1,024. */
export function descriptorReserve(limit: number): number {
  return Math.min(1024, Math.max(64, Math.floor(limit / 8)));
}

/**
 * The limit on open files that applies (the soft one) from /proc/self/limits
 * (Linux), or null where none is known. Bun raises it to the hard limit as
 * it starts, so this is the hard limit the process was given.
 */
export async function openFilesLimit(): Promise<number | null> {
  const limits = await readFile("/proc/self/limits", "utf8").catch(() => null);
  const soft = limits?.match(/^Max open files\s+(\d+)/m)?.[1];
  return soft === undefined ? null : Number(soft);
}

/**
 * The descriptors open now, less the listing's own: "none left" when the
 * listing failed for want of a descriptor, "unreadable" when it failed
 * otherwise (no /proc), which says nothing of them.
 */
async function listed(): Promise<number | "none left" | "unreadable"> {
  try {
    return (await readdir("/proc/self/fd")).length - 1;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "EMFILE" || code === "ENFILE" ? "none left" : "unreadable";
  }
}

export class Descriptors {
  private open = 0;
  /** Sockets admitted since the last count, which it may not hold yet. */
  private admittedSinceCount = 0;
  private wasShort = false;
  private counting = false;
  private readonly timer: Timer;

  private constructor(
    private readonly limit: number,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => void this.count(), POLL_MS);
    this.timer.unref();
  }

  /** Watches this process's descriptors; null where they cannot be counted (not Linux, no /proc). */
  static async watch(log: Logger): Promise<Descriptors | null> {
    const limit = await openFilesLimit();
    if (limit === null || (await listed()) === "unreadable") return null;
    const descriptors = new Descriptors(limit, log);
    await descriptors.count();
    return descriptors;
  }

  /** Fewer than the reserve are left: refuse what would take one more. */
  get short(): boolean {
    return this.open + this.admittedSinceCount >= this.limit - descriptorReserve(this.limit);
  }

  /** A socket was let in. */
  admitted(): void {
    this.admittedSinceCount++;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  // Off the event loop: a synchronous listing takes about 12 ms with 10,000 sockets open.
  private async count(): Promise<void> {
    if (this.counting) return;
    this.counting = true;
    const admittedBefore = this.admittedSinceCount;
    try {
      const open = await listed();
      if (open === "unreadable") return;
      this.open = open === "none left" ? this.limit : open;
      this.admittedSinceCount -= admittedBefore;
    } finally {
      this.counting = false;
    }
    const short = this.short;
    if (short !== this.wasShort) {
      const fields = { open: this.open, limit: this.limit, reserve: descriptorReserve(this.limit) };
      if (short) this.log.warn(fields, "descriptors short");
      else this.log.info(fields, "descriptors available");
      this.wasShort = short;
    }
  }
}
