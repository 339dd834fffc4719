// JSON object files that belong to other programs (Claude Code's settings,
// .mcp.json, ~/.claude.json): read, changed in place, written back in the
// file's own indentation through a temp file and a rename, so a reader sees
// the old file or the new one and nothing but our change differs.
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
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
}

export function readJsonFile(path: string): JsonFile {
  const fresh: JsonFile = { path, existed: false, value: {}, indent: "  ", finalNewline: true };
  if (!existsSync(path)) return fresh;
  const text = readFileSync(path, "utf8");
  if (text.trim() === "") return { ...fresh, existed: true };
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
  return { path, existed: true, value: parsed, indent, finalNewline: text.endsWith("\n") };
}

export function isEmptyObject(value: JsonObject): boolean {
  return Object.keys(value).length === 0;
}

/** Writes file.value through a temp file in the same directory and a rename. */
export function writeJsonFile(file: JsonFile): void {
  const text = `${JSON.stringify(file.value, null, file.indent)}${file.finalNewline ? "\n" : ""}`;
  writeAtomically(file.path, text);
}

/**
 * Temp file + rename. A symlink is written through to its target. An existing
 * file keeps its mode; a new one gets `mode` (0600 unless told otherwise).
 */
export function writeAtomically(path: string, text: string, mode = 0o600): void {
  const target = existsSync(path) ? realpathSync(path) : path;
  mkdirSync(dirname(target), { recursive: true });
  const keep = existsSync(target) ? statSync(target).mode & 0o777 : mode;
  const tmp = join(dirname(target), `.${basename(target)}.switchboard-${process.pid}.tmp`);
  writeFileSync(tmp, text, { mode: keep });
  // The mode given to writeFileSync passes through the umask (and a stale temp file keeps its own): set it outright.
  chmodSync(tmp, keep);
  renameSync(tmp, target);
}
