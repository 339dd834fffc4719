// The status fallback read from Claude Code transcripts in a temp HOME.
import { afterAll, describe, expect, test } from "bun:test";
import { waitUntil } from "@switchboard/testkit";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inferStatusFromTranscript, transcriptDir, watchTranscriptStatus } from "../src/index.ts";

const home = mkdtempSync(join(tmpdir(), "switchboard-home-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

let n = 0;
/** A fresh project dir under the temp HOME, with its transcript folder created. */
function project(): { cwd: string; dir: string } {
  const cwd = `/work/proj_${++n}/sub.dir`;
  const dir = transcriptDir(cwd, home);
  mkdirSync(dir, { recursive: true });
  return { cwd, dir };
}

const line = (o: object) => `${JSON.stringify(o)}\n`;
const userLine = line({ type: "user", message: { role: "user", content: "do it" } });
const endTurn = line({ type: "assistant", message: { role: "assistant", stop_reason: "end_turn", content: [] } });
const toolUse = line({ type: "assistant", message: { role: "assistant", stop_reason: "tool_use", content: [] } });

function setMtime(path: string, msAgo: number): void {
  const t = (Date.now() - msAgo) / 1000;
  utimesSync(path, t, t);
}

describe("transcript status", () => {
  test("transcriptDir replaces every non-alphanumeric character with '-'", () => {
    expect(transcriptDir("/home/me/my_proj.v2", "/h")).toBe("/h/.claude/projects/-home-me-my-proj-v2");
  });

  test("an assistant end_turn as the last line → idle", async () => {
    const { cwd, dir } = project();
    writeFileSync(join(dir, "a.jsonl"), userLine + endTurn);
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("idle");
  });

  test("a user line (or a tool_use turn) with a recent mtime → working", async () => {
    const { cwd, dir } = project();
    writeFileSync(join(dir, "a.jsonl"), endTurn + userLine);
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("working");
    writeFileSync(join(dir, "a.jsonl"), userLine + toolUse);
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("working");
  });

  test("an old mtime → idle whatever the last line", async () => {
    const { cwd, dir } = project();
    const path = join(dir, "a.jsonl");
    writeFileSync(path, userLine);
    setMtime(path, 120_000);
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("idle");
    expect(await inferStatusFromTranscript(cwd, { home, idleAfterMs: 300_000 })).toBe("working");
    expect(await inferStatusFromTranscript(cwd, { home, now: Date.now() - 110_000 })).toBe("working");
  });

  test("an idleAfterMs that is no span of time is refused invalid, not read as never or always idle", async () => {
    const { cwd, dir } = project();
    writeFileSync(join(dir, "a.jsonl"), userLine);
    for (const idleAfterMs of [0, -1, Number.NaN, Infinity]) {
      await expect(inferStatusFromTranscript(cwd, { home, idleAfterMs })).rejects.toMatchObject({
        code: "invalid",
        message: `idleAfterMs must be > 0 and at most ${2 ** 31 - 1} ms`,
      });
    }
  });

  test("the newest transcript counts; an incomplete last line is ignored", async () => {
    const { cwd, dir } = project();
    writeFileSync(join(dir, "old.jsonl"), userLine);
    setMtime(join(dir, "old.jsonl"), 10_000);
    writeFileSync(join(dir, "new.jsonl"), userLine + endTurn + '{"type":"user","message":{"ro');
    writeFileSync(join(dir, "notes.txt"), "not a transcript");
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("idle");
  });

  test("a last line longer than the first tail read (a large tool output) is read whole: end_turn → idle, a user line → working", async () => {
    const { cwd, dir } = project();
    const text = "x".repeat(3 * 1024 * 1024);
    const bigEndTurn = line({ type: "assistant", message: { role: "assistant", stop_reason: "end_turn", content: [{ type: "text", text }] } });
    const bigUser = line({ type: "user", message: { role: "user", content: text } });
    writeFileSync(join(dir, "a.jsonl"), userLine + bigEndTurn);
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("idle");
    writeFileSync(join(dir, "a.jsonl"), endTurn + bigUser);
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("working");
    // Behind a large line still being written, the complete one before it counts.
    writeFileSync(join(dir, "a.jsonl"), userLine + bigEndTurn + bigUser.slice(0, -10));
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("idle");
  });

  test("no directory or no transcript → null", async () => {
    expect(await inferStatusFromTranscript("/no/such/project", { home })).toBeNull();
    const { cwd, dir } = project();
    writeFileSync(join(dir, "other.txt"), "x");
    expect(await inferStatusFromTranscript(cwd, { home })).toBeNull();
  });

  test("watchTranscriptStatus reports each change once, with source jsonl", async () => {
    const { cwd, dir } = project();
    const path = join(dir, "s.jsonl");
    writeFileSync(path, userLine);
    const calls: Array<[string, string]> = [];
    const stop = watchTranscriptStatus(recorder(calls), cwd, { home, intervalMs: WATCH_INTERVAL_MS });
    try {
      await waitUntil(() => calls.length >= 1, 5000, "the first report");
      writeFileSync(path, userLine + endTurn);
      await waitUntil(() => calls.length >= 2, 5000, "the idle report");
      await anotherWatcherSeesChanges(3);
      expect(calls).toEqual([
        ["working", "jsonl"],
        ["idle", "jsonl"],
      ]);
    } finally {
      stop();
    }
    writeFileSync(path, userLine);
    await anotherWatcherSeesChanges(3);
    expect(calls).toHaveLength(2);
  });

  test("watchTranscriptStatus refuses an intervalMs no timer keeps (not more than 0, or over 2^31 − 1 ms) as invalid, before polling", async () => {
    const { cwd, dir } = project();
    writeFileSync(join(dir, "s.jsonl"), userLine);
    // 0 or less polled the disk without pause; a NaN or one past a timer's range, about every millisecond.
    for (const intervalMs of [0, -1, Number.NaN, 2 ** 31]) {
      const calls: Array<[string, string]> = [];
      let stop: (() => void) | undefined;
      let refused: unknown = null;
      try {
        stop = watchTranscriptStatus(recorder(calls), cwd, { home, intervalMs });
      } catch (error) {
        refused = error;
      }
      stop?.();
      expect(refused).toMatchObject({ code: "invalid", message: `intervalMs must be > 0 and at most ${2 ** 31 - 1} ms` });
      await Bun.sleep(50);
      expect(calls).toEqual([]);
    }
  });

  test("watchTranscriptStatus refuses an outrankedRetryMs or idleAfterMs no timer keeps as invalid, as it refuses such an intervalMs, before polling", async () => {
    const { cwd, dir } = project();
    writeFileSync(join(dir, "s.jsonl"), userLine);
    // A NaN idleAfterMs never counted a transcript as idle, a negative one always did; a NaN or
    // negative outrankedRetryMs made a report the broker did not apply again at every poll.
    for (const name of ["outrankedRetryMs", "idleAfterMs"] as const) {
      for (const ms of [0, -1, Number.NaN, Infinity, 2 ** 31]) {
        const calls: Array<[string, string]> = [];
        let stop: (() => void) | undefined;
        let refused: unknown = null;
        try {
          stop = watchTranscriptStatus(recorder(calls), cwd, { home, intervalMs: WATCH_INTERVAL_MS, [name]: ms });
        } catch (error) {
          refused = error;
        }
        stop?.();
        expect(refused).toMatchObject({ code: "invalid", message: `${name} must be > 0 and at most ${2 ** 31 - 1} ms` });
        await Bun.sleep(50);
        expect(calls).toEqual([]);
      }
    }
    const calls: Array<[string, string]> = [];
    const stop = watchTranscriptStatus(recorder(calls), cwd, { home, intervalMs: WATCH_INTERVAL_MS, outrankedRetryMs: 2 ** 31 - 1, idleAfterMs: 1 });
    try {
      await waitUntil(() => calls.length >= 1, 5000, "the first report");
    } finally {
      stop();
    }
  });

  test("watchTranscriptStatus reports again, after outrankedRetryMs, a status the broker did not apply", async () => {
    const { cwd, dir } = project();
    writeFileSync(join(dir, "s.jsonl"), userLine);
    const calls: Array<[string, string]> = [];
    // A fresher hook status outranks the first report; the broker answers with the status in effect.
    let outranked = true;
    const stop = watchTranscriptStatus(recorder(calls, (status) => (outranked ? "idle" : status)), cwd, { home, intervalMs: WATCH_INTERVAL_MS, outrankedRetryMs: 200 });
    try {
      await waitUntil(() => calls.length >= 1, 5000, "the first report");
      outranked = false;
      await waitUntil(() => calls.length >= 2, 5000, "the report made again");
      await anotherWatcherSeesChanges(3);
      // Applied the second time: not made again.
      expect(calls).toEqual([
        ["working", "jsonl"],
        ["working", "jsonl"],
      ]);
    } finally {
      stop();
    }
  });
});

const WATCH_INTERVAL_MS = 30;

/** A status sink that records each report, and answers with the status in effect after it (by default the one reported). */
function recorder(calls: Array<[string, string]>, inEffect: (status: "idle" | "working") => string = (status) => status) {
  return {
    setStatus: async (status: "idle" | "working", source: "jsonl") => {
      calls.push([status, source]);
      return { status: inEffect(status), statusSource: source };
    },
  };
}

/**
 * Resolves once a second watcher, polling as often, has reported `changes` changes of another
 * transcript: a watcher under test has polled about as many times meanwhile. What it reported
 * (or did not) by then is its answer; a fixed wait would prove nothing on a slow machine.
 */
async function anotherWatcherSeesChanges(changes: number): Promise<void> {
  const { cwd, dir } = project();
  const path = join(dir, "control.jsonl");
  writeFileSync(path, userLine);
  const seen: Array<[string, string]> = [];
  const stop = watchTranscriptStatus(recorder(seen), cwd, { home, intervalMs: WATCH_INTERVAL_MS });
  try {
    for (let i = 1; i <= changes; i++) {
      await waitUntil(() => seen.length >= i, 5000, `change ${i} of the control transcript`);
      writeFileSync(path, seen.at(-1)![0] === "working" ? userLine + endTurn : userLine);
    }
  } finally {
    stop();
  }
}
