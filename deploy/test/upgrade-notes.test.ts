// docs/deploy.md's upgrade notes against the migrations that exist: an
// operator reads them to know which tables an upgrade locks, and for how long.
import { describe, expect, test } from "bun:test";
import { REPO_ROOT } from "@switchboard/testkit";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const journal = JSON.parse(readFileSync(join(REPO_ROOT, "packages/db/drizzle/meta/_journal.json"), "utf8")) as { entries: { tag: string }[] };
const deployMd = readFileSync(join(REPO_ROOT, "docs/deploy.md"), "utf8");
const upgrades = deployMd.slice(deployMd.indexOf("## Backups and upgrades"), deployMd.indexOf("\n## ", deployMd.indexOf("## Backups and upgrades") + 1));

/** The migration numbers a text names: each four-digit number, and every one of a range "0006 to 0008". */
function named(text: string): Set<string> {
  const numbers = new Set([...text.matchAll(/\b(\d{4})\b/g)].map((m) => m[1]!));
  for (const [, from, to] of text.matchAll(/\b(\d{4}) to (\d{4})\b/g)) {
    for (let n = Number(from); n <= Number(to); n++) numbers.add(String(n).padStart(4, "0"));
  }
  return numbers;
}

describe("docs/deploy.md, Backups and upgrades", () => {
  test("names every migration after the first: each changes a table the instances still running use", () => {
    expect(upgrades.length).toBeGreaterThan(1000);
    const said = named(upgrades);
    const later = journal.entries.slice(1).map((e) => e.tag);
    expect(later.filter((tag) => !said.has(tag.slice(0, 4)))).toEqual([]);
  });
});
