// Which process a pid names: pids are reused, by any process once their
// holder ended, and from the start after a reboot (a machine that crashed
// with a broker on it may give that broker's pid to another process at
// boot). Linux only; elsewhere there is no identity beyond the pid.
import { readFileSync } from "node:fs";

export interface ProcessIdentity {
  /** The kernel's id of this boot. */
  bootId: string;
  /** When the process started, in clock ticks since the boot. */
  startTime: string;
}

export function identityOf(pid: number): ProcessIdentity | null {
  try {
    const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: fields are
    // counted from its last ")". starttime is field 22; state, field 3, is
    // the first after it.
    const startTime = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    return startTime === undefined ? null : { bootId, startTime };
  } catch {
    return null;
  }
}
