// Status fallback from Claude Code's own transcript, read on the peer's machine
// (the broker never reads a peer's disk): the newest *.jsonl under
// ~/.claude/projects/<cwd with every non-alphanumeric character → "-">.
import { open, readdir, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { checkTimeout } from "./config.ts";

export type TranscriptStatus = "idle" | "working";

// A transcript line can be large (tool output): the tail read grows from the
// first size, four times each step, until the last complete line starts in it,
// up to the last size (a longer line reads as unparsable: working).
const TAIL_BYTES = 256 * 1024;
const MAX_TAIL_BYTES = 16 * 1024 * 1024;
const DEFAULT_IDLE_AFTER_MS = 60_000;

export function transcriptDir(cwd: string, home: string = homedir()): string {
  return join(home, ".claude", "projects", cwd.replace(/[^A-Za-z0-9]/g, "-"));
}

async function newestTranscript(dir: string): Promise<{ path: string; mtimeMs: number } | null> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return null;
  }
  let newest: { path: string; mtimeMs: number } | null = null;
  for (const name of names.filter((n) => n.endsWith(".jsonl"))) {
    const path = join(dir, name);
    try {
      const info = await stat(path);
      if (info.isFile() && (!newest || info.mtimeMs > newest.mtimeMs)) newest = { path, mtimeMs: info.mtimeMs };
    } catch {
      // Deleted between readdir and stat.
    }
  }
  return newest;
}

/** The last line that is complete (newline-terminated) and parses as JSON. */
async function lastCompleteEntry(path: string): Promise<unknown> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    let lines: string[];
    for (let length = Math.min(size, TAIL_BYTES); ; length = Math.min(size, length * 4)) {
      const buffer = Buffer.alloc(length);
      await file.read(buffer, 0, length, size - length);
      lines = buffer.toString("utf8").split("\n");
      lines.pop(); // after the last newline: empty, or a line still being written
      // The last complete line starts in the tail when a newline comes before it there, or the tail is the whole file.
      if (lines.length >= 2 || length === size || length >= MAX_TAIL_BYTES) break;
    }
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i]!.trim();
      if (line === "") continue;
      try {
        return JSON.parse(line) as unknown;
      } catch {
        // The first line of the tail may be cut; earlier lines are not needed.
      }
    }
    return undefined;
  } finally {
    await file.close();
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function isFinishedTurn(entry: unknown): boolean {
  if (!isRecord(entry) || entry.type !== "assistant" || !isRecord(entry.message)) return false;
  return entry.message.stop_reason === "end_turn";
}

/**
 * idle: the last complete entry is an assistant message that ended its turn,
 * or the transcript was not written for idleAfterMs; working: otherwise;
 * null: no transcript.
 */
export async function inferStatusFromTranscript(
  cwd: string,
  opts: { home?: string; now?: number; idleAfterMs?: number } = {},
): Promise<TranscriptStatus | null> {
  // A NaN would never count a transcript idle, a negative one always.
  if (opts.idleAfterMs !== undefined) checkTimeout(opts.idleAfterMs, "idleAfterMs");
  const newest = await newestTranscript(transcriptDir(cwd, opts.home));
  if (!newest) return null;
  const now = opts.now ?? Date.now();
  if (now - newest.mtimeMs >= (opts.idleAfterMs ?? DEFAULT_IDLE_AFTER_MS)) return "idle";
  let entry: unknown;
  try {
    entry = await lastCompleteEntry(newest.path);
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
