// Loaded before every test file (bunfig.toml). The tests start real broker
// processes, databases and Postgres servers: bun's default of 5 s per test and
// hook is too short for them, also when a single file runs alone. Five
// minutes: the heaviest took two on a slow machine running the suite's six
// files at once. A test's bound is its waits; this only ends one that hangs.
// A serial run of several files keeps this default for its first file only (a
// limitation of bun's preload), so such runs pass --timeout too, as
// `bun run test` does.
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(300_000);
