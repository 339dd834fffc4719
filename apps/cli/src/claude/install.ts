// install / uninstall for Claude Code: the MCP server registration, the status
// hooks, the hook token file, and a record of the files and directories the
// install created, so uninstall takes back exactly what it added.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { CliError } from "../errors.ts";
import { canonicalPath, isEmptyObject, linkTarget, readJsonFile, writeAtomically, writeJsonFile, type Json, type JsonFile, type JsonObject } from "../json-file.ts";
import { hasOurHooks, hookCommand, hookContainers, installOurHooks, ourTokenFiles, removeOurHooks } from "./hooks.ts";
import { recordFileOf, type Layout } from "./layout.ts";
import { isOurServer, isWritten, removeOurServer, serverContainers, setOurServer, stdioServer, type StdioServer } from "./mcp-config.ts";

/** How this command starts itself (self.ts): what our entries run. */
type Self = { command: string; args: string[] };

export interface InstallInput {
  layout: Layout;
  self: Self;
  /** The broker's HTTP base URL, for the hooks. */
  hookUrl: string;
  token: string;
  /** `switchboard mcp` and its non-secret options. */
  mcpArgs: string[];
}

/** Paths the install created, oldest first; uninstall removes them newest first. A file reached through a symlink is noted as its target. */
type Created = string[];

interface InstallRecord {
  created: Created;
  /** A server of our name that was there before the first install: uninstall puts it back. */
  replacedServer: unknown;
  /** The server entry the last install wrote: uninstall removes the entry only while it is still that one. */
  server: StdioServer | undefined;
  /** Objects and lists there before the first install (mcpServers, hooks, hooks.<event>): uninstall leaves them, empty or not. */
  preexisting: string[];
  /** Files that held nothing but whitespace before the first install, by target, with that text: uninstall gives it back. */
  blank: Record<string, string>;
}

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((p): p is string => typeof p === "string") : []);

const texts = (value: unknown): Record<string, string> =>
  typeof value === "object" && value !== null
    ? Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === "string"))
    : {};

function readRecord(path: string): InstallRecord | null {
  if (!existsSync(path)) return null;
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    return {
      created: strings(parsed.created),
      replacedServer: parsed.replacedServer,
      server: stdioServer(parsed.server),
      preexisting: strings(parsed.preexisting),
      blank: texts(parsed.blank),
    };
  } catch {
    throw new CliError(`${path} is not a record this command wrote; remove it by hand`);
  }
}

/** A copy of a file's value without our entries, and whether it had any. */
function bare(file: JsonFile, strip: (value: JsonObject) => boolean): { file: JsonFile; value: JsonObject; hadOurs: boolean } {
  const value = structuredClone(file.value);
  return { file, value, hadOurs: strip(value) };
}

/**
 * Without a record, whether an entry of our server's name is ours: it runs
 * this command's mcp, and the settings beside it hold our hooks (install
 * writes both). Such an entry alone is the user's own, written by hand.
 */
function ourServerWithoutRecord(self: Self, settings: JsonFile | undefined): (entry: Json | undefined) => boolean {
  const hooksHere = settings !== undefined && hasOurHooks(settings.value);
  return (entry) => hooksHere && isOurServer(entry, self);
}

/**
 * What the files themselves tell of an earlier install when no record does
 * (it was lost, or the project moved from the directory it was made for):
 * our entries are not the user's, so what was there before is the files
 * without them; a file that holds nothing but them was created by install,
 * and so was the settings directory when that file is all it holds.
 */
function evidence(
  layout: Layout,
  settings: JsonFile | undefined,
  mcp: JsonFile | undefined,
  self: Self,
): Pick<InstallRecord, "created" | "preexisting"> {
  const ours = { isOurs: ourServerWithoutRecord(self, settings), replaced: undefined, preexisting: [] };
  const hooks = settings && bare(settings, (value) => removeOurHooks(value, settings.path) > 0);
  const server = mcp && bare(mcp, (value) => removeOurServer(value, ours));
  const files = [hooks, server].flatMap((b) => (b && b.file.existed && b.hadOurs && isEmptyObject(b.value) ? [linkTarget(b.file.path)] : []));
  const dir = dirname(layout.settingsFile);
  return {
    created: files.includes(layout.settingsFile) && readdirSync(dir).length === 1 ? [dir, ...files] : files,
    preexisting: [...hookContainers(hooks?.value ?? {}), ...serverContainers(server?.value ?? {})],
  };
}

/**
 * Our hooks that read another install's token file were made for another
 * directory (this project was moved or copied from there). That install may
 * still be in use: its token file and record stay, and the user is told so.
 */
function strayInstalls(settings: JsonObject, layout: Layout, verb: string): string[] {
  const ours = canonicalPath(layout.tokenFile);
  return ourTokenFiles(settings)
    .filter((file) => canonicalPath(file) !== ours)
    .flatMap((file) => {
      const left = [file, recordFileOf(file)].filter((path) => existsSync(path));
      if (left.length === 0) return [];
      return [
        `the hooks ${verb} were installed for another directory (this project was moved or copied from there); ` +
          `left as they are: ${left.join(", ")} (run \`switchboard uninstall\` in that directory, or remove them by hand if it is gone)`,
      ];
    });
}

/** mkdir -p that notes each directory it made. */
function ensureDir(dir: string, created: Created, mode?: number): void {
  if (existsSync(dir)) return;
  ensureDir(dirname(dir), created, mode);
  mkdirSync(dir, mode === undefined ? {} : { mode });
  created.push(dir);
}

/** Through a symlink the file install creates is the link's target, and the directories it made for it: the user's link stays theirs. */
function writeNoting(file: JsonFile, created: Created): void {
  const target = linkTarget(file.path);
  ensureDir(dirname(target), created);
  if (!file.existed && !created.includes(target)) created.push(target);
  writeJsonFile(file);
}

/** The files among these that held nothing but whitespace, by target, with their text. */
function blankFiles(files: JsonFile[]): Record<string, string> {
  return Object.fromEntries(files.flatMap((file) => (file.blank === undefined ? [] : [[linkTarget(file.path), file.blank]])));
}

function writeSecret(path: string, text: string, created: Created): void {
  if (!existsSync(path) && !created.includes(path)) created.push(path);
  writeAtomically(path, text, { mode: 0o600, force: true });
}

export interface InstallReport {
  /** Files left as they are, and why: ones read to take out what earlier versions wrote, and another install's token file and record. */
  warnings: string[];
}

export function install(input: InstallInput): InstallReport {
  const { layout, self } = input;
  const record = readRecord(layout.recordFile);
  // Every file is read and changed in memory first: one that cannot be read stops the install before anything is written.
  const settings = readJsonFile(layout.settingsFile);
  const mcp = readJsonFile(layout.mcpFile);
  const { created, preexisting } = record ?? evidence(layout, settings, mcp, self);
  const ourServer = ourServerWithoutRecord(self, settings);
  const stray = strayInstalls(settings.value, layout, "replaced");
  installOurHooks(settings.value, settings.path, hookCommand(self, input.hookUrl, layout.tokenFile), preexisting);
  const server: StdioServer = { type: "stdio", command: self.command, args: [...self.args, ...input.mcpArgs] };
  const before = setOurServer(mcp.value, mcp.path, server, (entry) => record !== null || ourServer(entry));
  // Installed again, the entry there is our own: what the first install replaced stays the one to put back,
  // and an entry of ours found without a record replaced nothing of the user's.
  const replacedServer = record !== null ? record.replacedServer : ourServer(before) ? undefined : before;
  const legacy = legacyCleanup(layout);

  ensureDir(layout.tokenDir, created, 0o700);
  writeSecret(layout.tokenFile, `${input.token}\n`, created);
  writeNoting(settings, created);
  writeNoting(mcp, created);
  if (legacy.file) writeJsonFile(legacy.file);
  if (!created.includes(layout.recordFile)) created.push(layout.recordFile);
  // Once written, the files are not blank: the record keeps what they held (blank now, the user emptied one since: that holds).
  const blank = { ...record?.blank, ...blankFiles([settings, mcp]) };
  const newRecord = { scope: layout.scope, created, replacedServer, server, preexisting, blank };
  writeAtomically(layout.recordFile, `${JSON.stringify(newRecord, null, 2)}\n`, { mode: 0o600 });
  return { warnings: [...stray, ...legacy.warnings] };
}

/**
 * Whether a settings file (another scope's) holds hooks of ours. One that
 * cannot be read is not this install's to judge: it says no.
 */
export function holdsOurHooks(settingsFile: string): boolean {
  if (!existsSync(settingsFile)) return false;
  try {
    return hasOurHooks(readJsonFile(settingsFile).value);
  } catch {
    return false;
  }
}

interface LegacyCleanup {
  /** The shared settings without our old hooks, when it had any. */
  file: JsonFile | undefined;
  removed: number;
  warnings: string[];
}

/**
 * Hooks an earlier version put into the project's shared settings.json,
 * bearer token and all. That file is not ours and only read for them: one
 * that cannot be read is left alone with a warning rather than stopping
 * install or uninstall.
 */
function legacyCleanup(layout: Layout): LegacyCleanup {
  const path = layout.legacySettingsFile;
  if (path === undefined || !existsSync(path)) return { file: undefined, removed: 0, warnings: [] };
  try {
    const file = readJsonFile(path);
    const removed = removeOurHooks(file.value, path);
    return { file: removed > 0 ? file : undefined, removed, warnings: [] };
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return { file: undefined, removed: 0, warnings: [`${why} (it is only read to take out hooks of earlier versions)`] };
  }
}

export interface UninstallReport {
  hooksRemoved: number;
  serverRemoved: boolean;
  /** The server of that name the install had replaced is back in its place. */
  serverRestored: boolean;
  removedFiles: string[];
  /** As in InstallReport. */
  warnings: string[];
}

export function uninstall(layout: Layout, self: Self): UninstallReport {
  const record = readRecord(layout.recordFile);
  // As in install, every file is read and changed in memory before anything is written.
  const settings = existsSync(layout.settingsFile) ? readJsonFile(layout.settingsFile) : undefined;
  const mcp = existsSync(layout.mcpFile) ? readJsonFile(layout.mcpFile) : undefined;
  const { created, preexisting } = record ?? evidence(layout, settings, mcp, self);
  const ourServer = ourServerWithoutRecord(self, settings);
  const stray = settings ? strayInstalls(settings.value, layout, "taken out") : [];
  const hooksRemoved = settings ? removeOurHooks(settings.value, settings.path, preexisting) : 0;
  const isOurs = (entry: Json | undefined) => (record === null ? ourServer(entry) : isWritten(entry, record.server));
  // What the record says the first install replaced goes back, even an entry that runs this command: the user may have written it.
  const replaced = record?.replacedServer;
  const serverRemoved = mcp !== undefined && removeOurServer(mcp.value, { isOurs, replaced, preexisting });
  const legacy = legacyCleanup(layout);
  const report: UninstallReport = {
    hooksRemoved: hooksRemoved + legacy.removed,
    serverRemoved,
    serverRestored: serverRemoved && replaced !== undefined,
    removedFiles: [],
    warnings: [...stray, ...legacy.warnings],
  };
  // By canonical path: the record names what install was given (a home through a symlink, say), this run may name it otherwise.
  const createdHere = new Set(created.map(canonicalPath));
  const blanks = new Map(Object.entries(record?.blank ?? {}).map(([path, text]) => [canonicalPath(path), text]));
  const createdFile = (file: JsonFile) => createdHere.has(canonicalPath(file.path));
  const settle = (file: JsonFile) => {
    // The file install created, not a symlink of the user's that leads to it.
    const target = linkTarget(file.path);
    const blank = blanks.get(canonicalPath(target));
    if (createdFile(file) && isEmptyObject(file.value)) {
      unlinkSync(target);
      report.removedFiles.push(target);
    } else if (blank !== undefined && isEmptyObject(file.value)) writeAtomically(file.path, blank);
    else writeJsonFile(file);
  };

  if (settings && (hooksRemoved > 0 || createdFile(settings))) settle(settings);
  if (mcp && (serverRemoved || createdFile(mcp))) settle(mcp);
  if (legacy.file) writeJsonFile(legacy.file);
  for (const path of [layout.tokenFile, layout.recordFile]) {
    if (existsSync(path)) {
      unlinkSync(path);
      report.removedFiles.push(path);
    }
  }
  // Directories the install made, deepest first, if nothing else lives in them now.
  for (const path of [...created].reverse()) {
    if (!existsSync(path)) continue;
    try {
      if (readdirSync(path).length === 0) {
        rmdirSync(path);
        report.removedFiles.push(path);
      }
    } catch {
      // A file (handled above) or not ours to judge.
    }
  }
  return report;
}
