// This process's open file descriptors, as Linux lists them in /proc: read
// by the scrape (process_open_fds) and by the guard that refuses new sockets
// when few are left (services/descriptors.ts). Listed off the event loop: a
// synchronous listing takes about 12 ms with 10,000 sockets open.
import { readdir, readFile } from "node:fs/promises";

/**
 * The descriptors open now, less the listing's own: "none left" when the
 * listing failed for want of a descriptor, "unreadable" when it failed
 * otherwise (not Linux, no /proc), which says nothing of them.
 */
export async function openDescriptors(): Promise<number | "none left" | "unreadable"> {
  try {
    return (await readdir("/proc/self/fd")).length - 1;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "EMFILE" || code === "ENFILE" ? "none left" : "unreadable";
  }
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
