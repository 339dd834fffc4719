// `bun run test:timings`: runs the suite on the backend this environment
// selects (DATABASE_URL or the embedded default) and records how long each
// file took in tooling/test-timings.json, keeping for each file the longer of
// this run's figure and the one already there. The workers take the slowest
// files first, and a file slow on one backend and quick on the other must
// count as slow on both: run this once per backend. Delete the file to start
// afresh.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface Timings {
  version: 1;
  files: Record<string, number>;
}

const TIMINGS = join(import.meta.dir, "test-timings.json");
const read = (path: string): Timings => (existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as Timings) : { version: 1, files: {} });

const scratch = mkdtempSync(join(tmpdir(), "test-timings-"));
const measured = join(scratch, "timings.json");
try {
  const run = Bun.spawn(["bun", "test", "--timeout", "120000", "--parallel=8", `--timings=${measured}`, "--update-timings", ...process.argv.slice(2)], {
    stdio: ["inherit", "inherit", "inherit"],
  });
  const code = await run.exited;
  if (code !== 0) process.exit(code);
  const kept = read(TIMINGS).files;
  const files = { ...kept };
  for (const [file, ms] of Object.entries(read(measured).files)) files[file] = Math.max(ms, kept[file] ?? 0);
  const sorted = Object.fromEntries(Object.entries(files).sort(([, a], [, b]) => b - a));
  writeFileSync(TIMINGS, `${JSON.stringify({ version: 1, files: sorted }, null, 2)}\n`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
