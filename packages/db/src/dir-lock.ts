// Two processes on one PGlite directory silently lose rows, so embedded mode
// holds an exclusive lock file. Its content names the holder, for the message
// the second process prints.
import { randomUUID } from "node:crypto";
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, type Dirent } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { identityOf, isZombie, type ProcessIdentity } from "./process-identity.ts";

export class DataDirLockedError extends Error {
  readonly code = "data_dir_locked";
  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder,
    /** The directory the lock was written for, when this one is a copy of it. */
    copiedFrom?: string,
  ) {
    const lockFile = join(dataDir, LOCK_FILE);
    super(
      copiedFrom === undefined
        ? `DATA_DIR ${dataDir} is in use by another broker (pid ${holder.pid} on ${holder.hostname}, since ${holder.since}); ` +
            "embedded mode serves one process only: stop that process or set DATABASE_URL " +
            `(if that host is gone, e.g. a container replaced after a crash, delete ${lockFile})`
        : `DATA_DIR ${dataDir} is a copy of ${copiedFrom}, taken while a broker used it (pid ${holder.pid}, since ${holder.since}, still running there): ` +
            "its database may have been copied half-written; copy a stopped broker's DATA_DIR instead " +
            `(or, to start on this copy all the same, delete ${lockFile})`,
    );
  }
}

/**
 * DATA_DIR cannot be created, or written in: a file in its place, a volume
 * mounted read-only or owned by another user. Waiting mends none of these.
 */
export class DataDirUnusableError extends Error {
  readonly code = "data_dir_unusable";
  constructor(dataDir: string, what: string, cause: unknown, remedy = "it must be a directory this process can create and write") {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`DATA_DIR ${dataDir} cannot hold ${what}: ${reason}; ${remedy}`, { cause });
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
    // A probe that could not be written may not be removable either (a
    // directory this process cannot search): that must not hide the answer.
    try {
      rmSync(probe, { force: true });
    } catch {
      // Nothing was left to remove.
    }
  }
}

interface LockHolder extends Partial<ProcessIdentity> {
  pid: number;
  hostname: string;
  since: string;
  /** The locked directory's real path and device:inode; absent from a lock of a broker from before they were written. */
  dataDir?: string;
  dirId?: string;
}

/** A directory's identity on this host: a copy has another, a move (within a file system) keeps it. */
function dirIdOf(dataDir: string): string {
  const { dev, ino } = statSync(dataDir);
  return `${dev}:${ino}`;
}

const LOCK_FILE = "broker.lock";

/** The lock's content, or null when there is none. */
function readLock(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

function parseHolder(content: string): LockHolder | null {
  try {
    const parsed: unknown = JSON.parse(content);
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
      const holder: LockHolder = { pid: parsed.pid, hostname: parsed.hostname, since: parsed.since };
      // Absent from a lock of a broker from before they were written.
      if ("bootId" in parsed && typeof parsed.bootId === "string") holder.bootId = parsed.bootId;
      if ("startTime" in parsed && typeof parsed.startTime === "string") holder.startTime = parsed.startTime;
      if ("dataDir" in parsed && typeof parsed.dataDir === "string") holder.dataDir = parsed.dataDir;
      if ("dirId" in parsed && typeof parsed.dirId === "string") holder.dirId = parsed.dirId;
      return holder;
    }
  } catch {
    // Not a lock this code wrote: treated as stale below.
  }
  return null;
}

/** Whether the holder (on this host) still runs: its pid is taken, and by the process that wrote the lock. */
function isAlive(holder: LockHolder): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  if (isZombie(holder.pid)) return false;
  if (holder.bootId === undefined || holder.startTime === undefined) return true;
  const now = identityOf(holder.pid);
  return now === null || (now.bootId === holder.bootId && now.startTime === holder.startTime);
}

/**
 * Removes the lock at path if it still holds `stale`. Contenders that judged
 * the same lock stale must not remove the one the first of them put in its
 * place: the lock is renamed away (one contender gets it), and put back if
 * it turns out to be another than the one judged. A third contender that
 * finds no lock in that moment takes it, and the one put back is lost: a
 * window only three starts at one instant on a dead holder's lock can meet,
 * which a rename cannot close (Node has no compare-and-swap of a file).
 */
function removeIfStill(path: string, stale: string): void {
  const aside = `${path}.stale-${process.pid}-${randomUUID()}`;
  try {
    renameSync(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  try {
    if (readFileSync(aside, "utf8") === stale) return;
    try {
      linkSync(aside, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  } finally {
    rmSync(aside, { force: true });
  }
}

const ATTEMPTS = 5;

/**
 * Why PGlite could not open pgdata, when a symbolic link inside it is the
 * cause, or null: its file system follows none (pg_wal moved to another
 * volume and linked back, say) and fails with no word of which. pgdata
 * itself may be a link: it is opened by its real path.
 */
export function linkInsidePgdata(dataDir: string): DataDirUnusableError | null {
  let entries: Dirent[];
  try {
    entries = readdirSync(realpathSync(join(dataDir, "pgdata")), { recursive: true, withFileTypes: true });
  } catch {
    return null;
  }
  const link = entries.find((entry) => entry.isSymbolicLink());
  if (link === undefined) return null;
  const path = join(link.parentPath, link.name);
  return new DataDirUnusableError(
    dataDir,
    "the embedded database",
    `${path} is a symbolic link, which it cannot follow inside pgdata`,
    "to keep its files on another volume, move the whole of pgdata there and link pgdata itself",
  );
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
  let dirId: string;
  let realDir: string;
  try {
    dirId = dirIdOf(dataDir);
    realDir = realpathSync(dataDir);
  } catch (error) {
    throw unusable(error);
  }
  const me: LockHolder = {
    pid: process.pid,
    hostname: hostname(),
    since: new Date().toISOString(),
    ...identityOf(process.pid),
    dataDir: realDir,
    dirId,
  };
  const content = JSON.stringify(me);
  // Written whole under a name of its own, then linked into place: the link
  // fails if a lock exists, and no contender ever reads a lock half-written
  // (which it would take for a dead holder's, and replace).
  const mine = `${path}.${process.pid}-${randomUUID()}`;
  try {
    writeFileSync(mine, content, { mode: 0o600 });
  } catch (error) {
    throw unusable(error);
  }
  try {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      try {
        linkSync(mine, path);
        return () => {
          if (readLock(path) === content) unlinkSync(path);
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw unusable(error);
      }
      const seen = readLock(path);
      if (seen === null) continue;
      const holder = parseHolder(seen);
      // A lock naming this very process is a leftover of an earlier one with
      // the same pid: a restarted container's broker is pid 1 every time.
      const sameHost = holder !== null && holder.hostname === me.hostname;
      const stale = holder === null || (sameHost && (holder.pid === me.pid || !isAlive(holder)));
      if (!stale) {
        // A lock written for another directory of this host came with a copy of it; on
        // another host the same directory (a shared volume) may have another identity.
        const copied = sameHost && holder.dirId !== undefined && holder.dirId !== dirId;
        throw new DataDirLockedError(dataDir, holder, copied ? (holder.dataDir ?? "another directory") : undefined);
      }
      // The holder died without releasing (SIGKILL): take the lock over.
      removeIfStill(path, seen);
    }
  } catch (error) {
    if (error instanceof DataDirLockedError || error instanceof DataDirUnusableError) throw error;
    throw unusable(error);
  } finally {
    rmSync(mine, { force: true });
  }
  const last = readLock(path);
  throw new DataDirLockedError(dataDir, (last === null ? null : parseHolder(last)) ?? { pid: -1, hostname: "unknown", since: "unknown" });
}
