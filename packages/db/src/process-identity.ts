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

/** The fields of /proc/<pid>/stat after the command name, from state (field 3) on; null where there is none. */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: fields are
    // counted from its last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

export function identityOf(pid: number): ProcessIdentity | null {
  try {
    const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    // starttime is field 22.
    const startTime = statFields(pid)?.[19];
    return startTime === undefined ? null : { bootId, startTime };
  } catch {
    return null;
  }
}

/**
 * Whether the process ended and only waits to be reaped (a zombie): a
 * broker killed under a supervisor that restarts it before it collects the
 * old one's status. False where that cannot be known.
 */
export function isZombie(pid: number): boolean {
  return statFields(pid)?.[0] === "Z";
}
