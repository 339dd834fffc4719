// Where a run's report goes: bench/out/<name>-<size>-<time>.json, and .md
// beside it when the run has tables; printed as well.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Size } from "./scenarios.ts";

export async function writeReport(name: string, size: Size, report: unknown, markdown?: string): Promise<void> {
  const dir = join(import.meta.dir, "..", "out");
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `${name}-${size}-${new Date().toISOString().replaceAll(":", "-")}`);
  const json = JSON.stringify(report, null, 2);
  await Bun.write(`${base}.json`, json);
  if (markdown === undefined) {
    console.log(json);
    console.log(`written to ${base}.json`);
    return;
  }
  await Bun.write(`${base}.md`, markdown);
  console.log(markdown);
  console.log(`\nwritten to ${base}.json and .md`);
}
