// Two processes on one PGlite directory silently lose rows, so embedded mode
// holds an exclusive lock file. Its content names the holder, for the message
// the second process prints.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";

export class DataDirLockedError extends Error {
  readonly code = "data_dir_locked";
  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder,
  ) {
    super(
      `DATA_DIR ${dataDir} is in use by another broker (pid ${holder.pid} on ${holder.hostname}, since ${holder.since}); ` +
        "embedded mode serves one process only: stop that process or set DATABASE_URL " +
        `(if that host is gone, e.g. a container replaced after a crash, delete ${join(dataDir, LOCK_FILE)})`,
    );
  }
}

/**
 * DATA_DIR cannot be created, or written in: a file in its place, a volume
 * mounted read-only or owned by another user. Waiting mends none of these.
 */
export class DataDirUnusableError extends Error {
  readonly code = "data_dir_unusable";
  constructor(dataDir: string, what: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`DATA_DIR ${dataDir} cannot hold ${what}: ${reason}; it must be a directory this process can create and write`, { cause });
  }
}

/**
 * Why the embedded database cannot write in DATA_DIR, or null: for a start
 * PGlite failed, which it reports as a bare "Aborted()" when its files cannot
 * be written (a full disk, a read-only pgdata). Tried with a page's worth of
 * bytes, as a file system without room may still create an empty file.
 */
export function unwritableDataDir(dataDir: string): DataDirUnusableError | null {
  const pgdata = join(dataDir, "pgdata");
  const probe = join(existsSync(pgdata) ? pgdata : dataDir, `write-probe-${process.pid}`);
  try {
    writeFileSync(probe, new Uint8Array(8192));
    return null;
  } catch (error) {
    return new DataDirUnusableError(dataDir, "the embedded database", error);
  } finally {
    rmSync(probe, { force: true });
  }
}

interface LockHolder {
  pid: number;
  hostname: string;
  since: string;
}

const LOCK_FILE = "broker.lock";

function readHolder(path: string): LockHolder | null {
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, "utf8"));
    if (
      typeof parsed === "object" &&
      parsed !== null &&
      "pid" in parsed &&
      typeof parsed.pid === "number" &&
      "hostname" in parsed &&
      typeof parsed.hostname === "string" &&
      "since" in parsed &&
      typeof parsed.since === "string"
    ) {
      return { pid: parsed.pid, hostname: parsed.hostname, since: parsed.since };
    }
  } catch {
    // Unreadable or half-written: treated as stale below.
  }
  return null;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Takes the lock or throws DataDirLockedError (or DataDirUnusableError); returns the release function. */
export function lockDataDir(dataDir: string): () => void {
  const unusable = (error: unknown) => new DataDirUnusableError(dataDir, "the embedded database", error);
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw unusable(error);
  }
  const path = join(dataDir, LOCK_FILE);
  const me: LockHolder = { pid: process.pid, hostname: hostname(), since: new Date().toISOString() };
  const content = JSON.stringify(me);

  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, content);
      closeSync(fd);
      return () => {
        if (readHolder(path)?.pid === me.pid) unlinkSync(path);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw unusable(error);
      const holder = readHolder(path);
      // A lock naming this very process is a leftover of an earlier one with
      // the same pid: a restarted container's broker is pid 1 every time.
      const stale = holder === null || (holder.hostname === me.hostname && (holder.pid === me.pid || !isAlive(holder.pid)));
      if (!stale) throw new DataDirLockedError(dataDir, holder);
      // The holder died without releasing (SIGKILL): take the lock over.
      try {
        unlinkSync(path);
      } catch {
        // Another starter removed it first; the retry decides.
      }
    }
  }
  const holder = readHolder(path) ?? { pid: -1, hostname: "unknown", since: "unknown" };
  throw new DataDirLockedError(dataDir, holder);
}
