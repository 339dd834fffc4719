// The embedded DATA_DIR lock with contenders in separate processes, as two
// brokers started together are: at most one may hold it, since two processes
// on one PGlite directory lose rows. (With three or more taking over a dead
// holder's lock at one instant a narrow window remains: dir-lock.ts.)
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";

const CONTENDERS = 2;
const ROUNDS = 20;
const root = mkdtempSync(join(tmpdir(), "switchboard-dir-lock-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Contenders try the lock of dataDir at one instant; returns what each got, once all have answered. */
async function contend(dataDir: string): Promise<string[]> {
  // Long enough for both to start on a busy machine; one that does not answers "late".
  const startAt = Date.now() + 1500;
  const procs = Array.from({ length: CONTENDERS }, () =>
    Bun.spawn(["bun", join(import.meta.dir, "fixtures", "take-lock.ts"), dataDir, String(startAt)], { stdin: "pipe", stdout: "pipe" }),
  );
  const readers = procs.map((p) => p.stdout.getReader());
  const answers = await Promise.all(readers.map(async (r) => new TextDecoder().decode((await r.read()).value).trim()));
  // Every answer is in while all still run: a holder released no lock yet.
  for (const p of procs) void p.stdin.end();
  await Promise.all(procs.map((p) => p.exited));
  return answers;
}

/** A lock file whose holder is dead: no process has a pid this high (pid_max is at most 2^22). */
function deadHolder(dataDir: string): void {
  writeFileSync(join(dataDir, "broker.lock"), JSON.stringify({ pid: 2 ** 23, hostname: hostname(), since: "2026-01-01T00:00:00.000Z" }));
}

describe("contenders starting at one instant", () => {
  for (const kind of ["an empty DATA_DIR", "a lock its dead holder left"] as const) {
    test(`on ${kind}: exactly one holds the lock, the others are refused, in each of ${ROUNDS} rounds`, async () => {
      const holders: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const dataDir = mkdtempSync(join(root, "data-"));
        if (kind === "a lock its dead holder left") deadHolder(dataDir);
        // A round a contender came late to raced nothing (a loaded machine): it is run again, on a fresh directory.
        let answers = await contend(dataDir);
        for (let again = 0; again < 3 && answers.includes("late"); again++) {
          const fresh = mkdtempSync(join(root, "data-"));
          if (kind === "a lock its dead holder left") deadHolder(fresh);
          answers = await contend(fresh);
        }
        for (const answer of answers) expect(["held", "data_dir_locked"]).toContain(answer);
        holders.push(answers.filter((a) => a === "held").length);
      }
      expect(holders).toEqual(Array.from({ length: ROUNDS }, () => 1));
    }, 300_000);
  }
});
