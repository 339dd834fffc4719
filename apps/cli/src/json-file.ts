// JSON object files that belong to other programs (Claude Code's settings,
// .mcp.json, ~/.claude.json): read, changed in place, written back in the
// file's own indentation through a temp file and a rename, so a reader sees
// the old file or the new one and nothing but our change differs.
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, fchmodSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { CliError } from "./errors.ts";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export const isObject = (v: Json | undefined): v is JsonObject => v !== null && typeof v === "object" && !Array.isArray(v);

export interface JsonFile {
  path: string;
  existed: boolean;
  value: JsonObject;
  indent: string;
  finalNewline: boolean;
  /** What a file that held nothing but whitespace held: the text to give back when it is left empty. */
  blank: string | undefined;
}

export function readJsonFile(path: string): JsonFile {
  const fresh: JsonFile = { path, existed: false, value: {}, indent: "  ", finalNewline: true, blank: undefined };
  // Its links are followed here too: a loop is refused before anything is written.
  if (!existsSync(linkTarget(path))) return fresh;
  const text = readFileSync(path, "utf8");
  if (text.trim() === "") return { ...fresh, existed: true, blank: text };
  let parsed: Json;
  try {
    parsed = JSON.parse(text) as Json;
  } catch (error) {
    throw new CliError(`${path} is not valid JSON (${error instanceof Error ? error.message : String(error)}); not touching it`);
  }
  if (!isObject(parsed)) throw new CliError(`${path} does not hold a JSON object; not touching it`);
  // A file on one line (written by a tool, compact) stays on one line; `{}` says nothing of a layout.
  const oneLine = !text.trim().includes("\n") && !isEmptyObject(parsed);
  const indent = /^([ \t]+)"/m.exec(text)?.[1] ?? (oneLine ? "" : "  ");
  return { path, existed: true, value: parsed, indent, finalNewline: text.endsWith("\n"), blank: undefined };
}

export function isEmptyObject(value: JsonObject): boolean {
  return Object.keys(value).length === 0;
}

/** Writes file.value through a temp file in the same directory and a rename. */
export function writeJsonFile(file: JsonFile): void {
  const text = `${JSON.stringify(file.value, null, file.indent)}${file.finalNewline ? "\n" : ""}`;
  writeAtomically(file.path, text);
}

export interface FileMode {
  /** The mode of a file written anew. */
  mode: number;
  /** An existing file gets `mode` too instead of keeping its own: a secret is 0600 whatever it was made. */
  force?: boolean;
}

/** Symlinks followed in a row at most, as the kernel does (ELOOP). */
const MAX_LINKS = 40;

/**
 * The file that writing `path` changes: its chain of symlinks followed, to a
 * target that need not exist yet (a dangling link is written through, and
 * stays a link).
 */
export function linkTarget(path: string): string {
  let current = path;
  for (let hops = 0; lstatSync(current, { throwIfNoEntry: false })?.isSymbolicLink(); hops++) {
    if (hops === MAX_LINKS) throw new CliError(`${path}: more than ${MAX_LINKS} symlinks in a row (a loop?); not touching it`);
    // A relative link is read from the directory it is in, through that directory's own links.
    current = resolve(realpathSync(dirname(current)), readlinkSync(current));
  }
  return current;
}

/**
 * One spelling of the file `path` leads to: its links followed (linkTarget),
 * and the directories above it by their real paths as far as they exist. A
 * file named through a symlinked home by one command and through the real
 * one by the next is the same file to both.
 */
export function canonicalPath(path: string): string {
  const target = linkTarget(path);
  const below = [basename(target)];
  let dir = dirname(target);
  while (!existsSync(dir) && dirname(dir) !== dir) {
    below.unshift(basename(dir));
    dir = dirname(dir);
  }
  return join(realpathSync(dir), ...below);
}

/**
 * Temp file + rename. A symlink is written through to its target. An existing
 * file keeps its mode unless told to force it; a new one gets `mode`.
 */
export function writeAtomically(path: string, text: string, { mode, force = false }: FileMode = { mode: 0o600 }): void {
  const target = linkTarget(path);
  mkdirSync(dirname(target), { recursive: true });
  const finalMode = !force && existsSync(target) ? statSync(target).mode & 0o777 : mode;
  // Others may write to that directory: a name they cannot guess, created only if nothing (a planted symlink) is there.
  const tmp = join(dirname(target), `.${basename(target)}.switchboard-${randomBytes(8).toString("hex")}.tmp`);
  const fd = openSync(tmp, "wx", 0o600);
  try {
    fill(fd, text, finalMode);
    renameSync(tmp, target);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
}

/** Writes and closes a new file; the mode given to openSync went through the umask, so it is set outright. */
function fill(fd: number, text: string, mode: number): void {
  try {
    writeFileSync(fd, text);
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}
