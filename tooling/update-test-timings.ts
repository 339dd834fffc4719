// `bun run test:timings`: runs `bun run test` with --update-timings on the
// backend this environment selects (DATABASE_URL or the embedded default),
// then keeps in tooling/test-timings.json, for each file, the longer of this
// run's figure and the one there before. The workers take the slowest files
// first, and a file slow on one backend and quick on the other must count as
// slow on both: run this once per backend. Delete the file to start afresh.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

interface Timings {
  version: 1;
  files: Record<string, number>;
}

const TIMINGS = join(import.meta.dir, "test-timings.json");
const read = (): Timings => (existsSync(TIMINGS) ? (JSON.parse(readFileSync(TIMINGS, "utf8")) as Timings) : { version: 1, files: {} });

const kept = read().files;
const run = Bun.spawn(["bun", "run", "test", "--update-timings", ...process.argv.slice(2)], { stdio: ["inherit", "inherit", "inherit"] });
const code = await run.exited;
const measured = read().files;
const files = { ...kept };
for (const [file, ms] of Object.entries(measured)) files[file] = Math.max(ms, kept[file] ?? 0);
const sorted = Object.fromEntries(Object.entries(files).sort(([, a], [, b]) => b - a));
writeFileSync(TIMINGS, `${JSON.stringify({ version: 1, files: sorted }, null, 2)}\n`);
process.exit(code);
