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

  test("with CLAUDE_CONFIG_DIR set, the transcripts are looked for there, as Claude Code keeps them", async () => {
    const cwd = "/work/moved/config";
    const moved = join(home, "moved-config");
    mkdirSync(join(moved, "projects", "-work-moved-config"), { recursive: true });
    writeFileSync(join(moved, "projects", "-work-moved-config", "a.jsonl"), userLine + endTurn);
    const before = process.env.CLAUDE_CONFIG_DIR;
    process.env.CLAUDE_CONFIG_DIR = moved;
    try {
      expect(transcriptDir(cwd, home)).toBe(join(moved, "projects", "-work-moved-config"));
      expect(await inferStatusFromTranscript(cwd, { home })).toBe("idle");
    } finally {
      if (before === undefined) delete process.env.CLAUDE_CONFIG_DIR;
      else process.env.CLAUDE_CONFIG_DIR = before;
    }
    expect(await inferStatusFromTranscript(cwd, { home })).toBeNull();
  });

  test("a project path whose folder name passes 200 characters is found under Claude Code's cut name with a hash of the path", async () => {
    const cwd = `/work/${"a-long-package-directory-name/".repeat(8)}svc`;
    const cut = cwd.replace(/[^A-Za-z0-9]/g, "-").slice(0, 200);
    // Claude Code's CLI runs on Bun: Bun.hash of the path, in base 36.
    expect(transcriptDir(cwd, home)).toBe(join(home, ".claude", "projects", `${cut}-${Bun.hash(cwd).toString(36)}`));
    mkdirSync(transcriptDir(cwd, home), { recursive: true });
    writeFileSync(join(transcriptDir(cwd, home), "a.jsonl"), userLine + endTurn);
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("idle");
    // Written by a runtime whose hash differs: the one folder with the cut name.
    const other = `/work/${"another-long-package-directory/".repeat(8)}svc`;
    const otherCut = other.replace(/[^A-Za-z0-9]/g, "-").slice(0, 200);
    mkdirSync(join(home, ".claude", "projects", `${otherCut}-1x2y3z`), { recursive: true });
    writeFileSync(join(home, ".claude", "projects", `${otherCut}-1x2y3z`, "a.jsonl"), endTurn + userLine);
    expect(await inferStatusFromTranscript(other, { home })).toBe("working");
  });

  test("entries Claude Code writes after a turn's last message (hook outcomes, its duration, an away summary) leave it idle", async () => {
    const { cwd, dir } = project();
    const after = [
      line({ type: "attachment", attachment: { type: "hook_success", hookEvent: "Stop", exitCode: 0 } }),
      line({ type: "system", subtype: "stop_hook_summary", hookCount: 1, hookErrors: [], preventedContinuation: false }),
      line({ type: "system", subtype: "turn_duration", durationMs: 5123 }),
      line({ type: "system", subtype: "away_summary", content: "while you were away" }),
      line({ type: "file-history-snapshot", snapshot: {} }),
    ].join("");
    writeFileSync(join(dir, "a.jsonl"), userLine + endTurn + after);
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("idle");
    // The same entries after a tool call or a prompt: the turn runs on.
    writeFileSync(join(dir, "a.jsonl"), userLine + toolUse + after);
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("working");
    writeFileSync(join(dir, "a.jsonl"), endTurn + userLine + after);
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("working");
    // Past the first tail read, too: a large output between the message and the end.
    const big = line({ type: "system", subtype: "informational", content: "x".repeat(1024 * 1024) });
    writeFileSync(join(dir, "a.jsonl"), userLine + endTurn + big + after);
    expect(await inferStatusFromTranscript(cwd, { home })).toBe("idle");
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
