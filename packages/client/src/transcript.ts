// Status fallback from Claude Code's own transcript, read on the peer's machine
// (the broker never reads a peer's disk): the newest *.jsonl in the project's
// folder under Claude Code's configuration directory (transcriptDir).
import { open, readdir, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, join, resolve } from "node:path";
import { checkTimeout } from "./config.ts";

export type TranscriptStatus = "idle" | "working";

// A transcript line can be large (tool output): the tail read grows from the
// first size, four times each step, until it holds the last message entry,
// up to the last size (past it: working).
const TAIL_BYTES = 256 * 1024;
const MAX_TAIL_BYTES = 16 * 1024 * 1024;
const DEFAULT_IDLE_AFTER_MS = 60_000;
/** Claude Code cuts a project's folder name here and appends a hash of the whole path. */
const MAX_FOLDER_NAME = 200;

/** Where Claude Code keeps its projects' transcripts: under CLAUDE_CONFIG_DIR when set, else ~/.claude. */
function projectsDir(home: string | undefined): string {
  const moved = process.env.CLAUDE_CONFIG_DIR;
  return join(moved !== undefined && moved !== "" ? resolve(moved) : join(home ?? homedir(), ".claude"), "projects");
}

const sanitized = (cwd: string) => cwd.replace(/[^A-Za-z0-9]/g, "-");

/** The hash Claude Code's CLI (a Bun program) appends to a long folder name; under Node its own code's fallback. */
function pathHash(cwd: string): string {
  if (typeof Bun !== "undefined") return Bun.hash(cwd).toString(36);
  let hash = 0;
  for (let i = 0; i < cwd.length; i++) hash = ((hash << 5) - hash + cwd.charCodeAt(i)) | 0;
  return Math.abs(hash).toString(36);
}

/**
 * The folder of a project's transcripts: <config dir>/projects/<cwd with every
 * character that is not a letter or digit replaced by "-">; a name longer
 * than 200 characters is cut there and a hash of cwd appended, as Claude Code
 * names it.
 */
export function transcriptDir(cwd: string, home?: string): string {
  const name = sanitized(cwd);
  const folder = name.length <= MAX_FOLDER_NAME ? name : `${name.slice(0, MAX_FOLDER_NAME)}-${pathHash(cwd)}`;
  return join(projectsDir(home), folder);
}

/** The paths in a directory, or null when it cannot be read. */
const listed = (dir: string): Promise<string[] | null> =>
  readdir(dir).then(
    (names) => names.map((name) => join(dir, name)),
    () => null,
  );

/**
 * The files of the project's folder: transcriptDir, or for a long path whose
 * hash another runtime computed differently, the one folder that starts with
 * the same cut name.
 */
async function projectFiles(cwd: string, home: string | undefined): Promise<string[] | null> {
  const files = await listed(transcriptDir(cwd, home));
  const name = sanitized(cwd);
  if (files !== null || name.length <= MAX_FOLDER_NAME) return files;
  const prefix = `${name.slice(0, MAX_FOLDER_NAME)}-`;
  const matches = ((await listed(projectsDir(home))) ?? []).filter((path) => basename(path).startsWith(prefix));
  return matches.length === 1 ? listed(matches[0]!) : null;
}

async function newestTranscript(cwd: string, home: string | undefined): Promise<{ path: string; mtimeMs: number } | null> {
  const paths = await projectFiles(cwd, home);
  if (paths === null) return null;
  let newest: { path: string; mtimeMs: number } | null = null;
  for (const path of paths.filter((p) => p.endsWith(".jsonl"))) {
    try {
      const info = await stat(path);
      if (info.isFile() && (!newest || info.mtimeMs > newest.mtimeMs)) newest = { path, mtimeMs: info.mtimeMs };
    } catch {
      // Deleted between readdir and stat.
    }
  }
  return newest;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Entries of the conversation itself. Claude Code writes others after a
 * turn's last message (a Stop hook's outcome and summary, the turn's
 * duration, a summary of the session written while the user is away, …):
 * they say nothing of whether a turn runs.
 */
const isMessage = (entry: unknown): entry is Record<string, unknown> => isRecord(entry) && (entry.type === "user" || entry.type === "assistant");

function isFinishedTurn(entry: unknown): boolean {
  return isMessage(entry) && entry.type === "assistant" && isRecord(entry.message) && entry.message.stop_reason === "end_turn";
}

/** The last complete (newline-terminated) line that parses as a message entry. */
async function lastMessageEntry(path: string): Promise<unknown> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    for (let length = Math.min(size, TAIL_BYTES); ; length = Math.min(size, length * 4)) {
      const buffer = Buffer.alloc(length);
      await file.read(buffer, 0, length, size - length);
      const lines = buffer.toString("utf8").split("\n");
      lines.pop(); // after the last newline: empty, or a line still being written
      // The first line of a tail that is not the whole file may be cut short.
      const first = length === size ? 0 : 1;
      for (let i = lines.length - 1; i >= first; i--) {
        const line = lines[i]!.trim();
        if (line === "") continue;
        try {
          const entry = JSON.parse(line) as unknown;
          if (isMessage(entry)) return entry;
        } catch {
          // Not JSON: not a message either.
        }
      }
      if (length === size || length >= MAX_TAIL_BYTES) return undefined;
    }
  } finally {
    await file.close();
  }
}

/**
 * idle: the last complete message entry is an assistant message that ended
 * its turn, or the transcript was not written for idleAfterMs; working:
 * otherwise; null: no transcript.
 */
export async function inferStatusFromTranscript(
  cwd: string,
  opts: { home?: string; now?: number; idleAfterMs?: number } = {},
): Promise<TranscriptStatus | null> {
  // A NaN would never count a transcript idle, a negative one always.
  if (opts.idleAfterMs !== undefined) checkTimeout(opts.idleAfterMs, "idleAfterMs");
  const newest = await newestTranscript(cwd, opts.home);
  if (!newest) return null;
  const now = opts.now ?? Date.now();
  if (now - newest.mtimeMs >= (opts.idleAfterMs ?? DEFAULT_IDLE_AFTER_MS)) return "idle";
  let entry: unknown;
  try {
    entry = await lastMessageEntry(newest.path);
  } catch {
    return null;
  }
  return isFinishedTurn(entry) ? "idle" : "working";
}

export interface StatusSink {
  /** Resolves with the status in effect after it (the broker's answer), as SwitchboardClient.setStatus does. */
  setStatus(status: TranscriptStatus, source: "jsonl"): Promise<{ status: string }>;
  /** "closed" once the sink has ended for good, as SwitchboardClient's: the watcher then stops. */
  readonly connectionState?: string;
}

/** How long a status the broker did not apply (a fresher hook or manual one outranked it) waits before it is reported again. */
const OUTRANKED_RETRY_MS = 30_000;

/**
 * Polls the transcript every intervalMs (default 2000) and reports each change
 * with source "jsonl" (the broker ranks it below hooks and manual status). A
 * report the broker did not apply is made again every `outrankedRetryMs`
 * while the transcript says so: a higher-ranked status outranks it only for
 * a while. Returns a stop function; it stops by itself once the client has
 * ended (its connectionState is "closed"). An intervalMs, outrankedRetryMs or
 * idleAfterMs no timer keeps (not more than 0, or over 2^31 − 1) throws
 * SwitchboardError("invalid").
 */
export function watchTranscriptStatus(
  client: StatusSink,
  cwd: string,
  opts: { intervalMs?: number; home?: string; idleAfterMs?: number; outrankedRetryMs?: number } = {},
): () => void {
  const intervalMs = opts.intervalMs ?? 2000;
  // A timer fires at once for 0, a negative, NaN or a delay past its range: the disk would be polled without pause.
  checkTimeout(intervalMs, "intervalMs");
  // Not timers, but compared with elapsed time: a NaN idleAfterMs never counts a transcript idle, a
  // negative one always; a NaN or negative outrankedRetryMs reports again at every poll.
  const outrankedRetryMs = opts.outrankedRetryMs ?? OUTRANKED_RETRY_MS;
  checkTimeout(outrankedRetryMs, "outrankedRetryMs");
  if (opts.idleAfterMs !== undefined) checkTimeout(opts.idleAfterMs, "idleAfterMs");
  let stopped = false;
  /** The last status the broker applied from here. */
  let reported: TranscriptStatus | null = null;
  /** The last one it did not, and when. */
  let outranked: { status: TranscriptStatus; at: number } | null = null;
  let busy = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  const stop = () => {
    stopped = true;
    clearInterval(timer);
  };
  const tick = async () => {
    // An ended client takes no status: polling on for it would only keep the process alive.
    if (client.connectionState === "closed") stop();
    if (busy || stopped) return;
    busy = true;
    try {
      const status = await inferStatusFromTranscript(cwd, { home: opts.home, idleAfterMs: opts.idleAfterMs });
      const waiting = outranked?.status === status && Date.now() - outranked.at < outrankedRetryMs;
      if (status !== null && status !== reported && !waiting && !stopped) {
        const answer = await client.setStatus(status, "jsonl");
        if (answer.status === status) {
          reported = status;
          outranked = null;
        } else {
          outranked = { status, at: Date.now() };
        }
      }
    } catch {
      // Not reported: the next tick tries again.
    } finally {
      busy = false;
    }
  };
  void tick();
  if (!stopped) timer = setInterval(() => void tick(), intervalMs);
  return stop;
}
