// The benchmark smoke runs are split over the smoke-*.test.ts files, so that
// the test run's workers take them side by side: together they must take
// every run of the benchmark once, and each group must have its file.
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { allSmokeRuns, SMOKE_GROUPS } from "./support/smoke.ts";

test("the smoke files together take every benchmark run once", () => {
  expect(Object.values(SMOKE_GROUPS).flat().sort()).toEqual(allSmokeRuns().sort());
  for (const group of Object.keys(SMOKE_GROUPS)) expect(existsSync(join(import.meta.dir, `smoke-${group}.test.ts`))).toBe(true);
});
