// writeAtomically, behind every file install and uninstall write: a temp file
// beside the target and a rename, in directories other users may write to.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeAtomically } from "../src/json-file.ts";

const root = mkdtempSync(join(tmpdir(), "switchboard-json-file-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const modeOf = (path: string) => statSync(path).mode & 0o777;

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

describe("the mode", () => {
  test("an existing file keeps its own; one told to force it gets the mode given, from the write itself", () => {
    const here = dir("modes");
    const settings = join(here, "settings.json");
    writeFileSync(settings, "{}\n");
    chmodSync(settings, 0o664);
    writeAtomically(settings, '{"a":1}\n');
    expect(modeOf(settings)).toBe(0o664);
    // A token file the user made readable to all: the new token is never readable so, not even until a later chmod.
    const secret = join(here, "hook.token");
    writeFileSync(secret, "old\n");
    chmodSync(secret, 0o644);
    writeAtomically(secret, "new\n", { mode: 0o600, force: true });
    expect({ mode: modeOf(secret), text: readFileSync(secret, "utf8") }).toEqual({ mode: 0o600, text: "new\n" });
  });
});
