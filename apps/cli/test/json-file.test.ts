// writeAtomically, behind every file install and uninstall write: a temp file
// beside the target and a rename, in directories other users may write to.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeAtomically } from "../src/json-file.ts";

const root = mkdtempSync(join(tmpdir(), "switchboard-json-file-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function dir(name: string): string {
  const path = join(root, name);
  mkdirSync(path);
  return path;
}

describe("the temp file", () => {
  test("a symlink planted where a temp file could be named is not written through", () => {
    const here = dir("planted");
    const victim = join(here, "victim");
    writeFileSync(victim, "untouched\n");
    // The name the temp file once had, from this process's pid: anyone who can write here could guess it.
    const planted = join(here, `.settings.json.switchboard-${process.pid}.tmp`);
    symlinkSync(victim, planted);
    writeAtomically(join(here, "settings.json"), "{}\n");
    expect(readFileSync(victim, "utf8")).toBe("untouched\n");
    expect(readFileSync(join(here, "settings.json"), "utf8")).toBe("{}\n");
    expect(readdirSync(here).sort()).toEqual([planted.slice(here.length + 1), "settings.json", "victim"].sort());
  });

  test("a rename that fails leaves no temp file behind", () => {
    const here = dir("failed-rename");
    // A directory where the file should go: the rename onto it fails.
    mkdirSync(join(here, "settings.json"));
    expect(() => writeAtomically(join(here, "settings.json"), "{}\n")).toThrow();
    expect(readdirSync(here)).toEqual(["settings.json"]);
  });
});
