// install / uninstall for Claude Code: the MCP server registration, the status
// hooks, the hook token file, and a record of the files and directories the
// install created, so uninstall takes back exactly what it added.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { CliError } from "../errors.ts";
import { isEmptyObject, readJsonFile, writeAtomically, writeJsonFile, type JsonFile } from "../json-file.ts";
import { hookCommand, hookContainers, installOurHooks, removeOurHooks } from "./hooks.ts";
import type { Layout } from "./layout.ts";
import { removeOurServer, serverContainers, setOurServer, type StdioServer } from "./mcp-config.ts";

export interface InstallInput {
  layout: Layout;
  self: { command: string; args: string[] };
  /** The broker's HTTP base URL, for the hooks. */
  hookUrl: string;
  token: string;
  /** `switchboard mcp` and its non-secret options. */
  mcpArgs: string[];
}

/** Paths the install created, oldest first; uninstall removes them newest first. */
type Created = string[];

interface InstallRecord {
  created: Created;
  /** A server of our name that was there before the first install: uninstall puts it back. */
  replacedServer: unknown;
  /** The server entry the last install wrote: uninstall removes the entry only while it is still that one. */
  server: StdioServer | undefined;
  /** Objects and lists there before the first install (mcpServers, hooks, hooks.<event>): uninstall leaves them, empty or not. */
  preexisting: string[];
}

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((p): p is string => typeof p === "string") : []);

function stdioServer(value: unknown): StdioServer | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { command, args } = value as { command?: unknown; args?: unknown };
  if (typeof command !== "string" || !Array.isArray(args) || !args.every((a) => typeof a === "string")) return undefined;
  return { type: "stdio", command, args };
}

function readRecord(path: string): InstallRecord | null {
  if (!existsSync(path)) return null;
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    return {
      created: strings(parsed.created),
      replacedServer: parsed.replacedServer,
      server: stdioServer(parsed.server),
      preexisting: strings(parsed.preexisting),
    };
  } catch {
    throw new CliError(`${path} is not a record this command wrote; remove it by hand`);
  }
}

/** mkdir -p that notes each directory it made. */
function ensureDir(dir: string, created: Created, mode?: number): void {
  if (existsSync(dir)) return;
  ensureDir(dirname(dir), created, mode);
  mkdirSync(dir, mode === undefined ? {} : { mode });
  created.push(dir);
}

function writeNoting(file: JsonFile, created: Created): void {
  ensureDir(dirname(file.path), created);
  if (!file.existed && !created.includes(file.path)) created.push(file.path);
  writeJsonFile(file);
}

function writeSecret(path: string, text: string, created: Created): void {
  if (!existsSync(path) && !created.includes(path)) created.push(path);
  writeAtomically(path, text, 0o600);
  chmodSync(path, 0o600);
}

export interface InstallReport {
  /** Files left as they are, and why: only ever ones read to take out what earlier versions wrote. */
  warnings: string[];
}

export function install(input: InstallInput): InstallReport {
  const { layout } = input;
  const record = readRecord(layout.recordFile);
  const created = record?.created ?? [];
  // Every file is read and changed in memory first: one that cannot be read stops the install before anything is written.
  const settings = readJsonFile(layout.settingsFile);
  const mcp = readJsonFile(layout.mcpFile);
  const preexisting = record?.preexisting ?? [...hookContainers(settings.value), ...serverContainers(mcp.value)];
  installOurHooks(settings.value, settings.path, hookCommand(input.self, input.hookUrl, layout.tokenFile), preexisting);
  const server: StdioServer = { type: "stdio", command: input.self.command, args: [...input.self.args, ...input.mcpArgs] };
  const before = setOurServer(mcp.value, mcp.path, server, record !== null);
  // Installed again, the entry there is our own: what the first install replaced stays the one to put back.
  const replacedServer = record === null ? before : record.replacedServer;
  const legacy = legacyCleanup(layout);

  ensureDir(layout.tokenDir, created, 0o700);
  writeSecret(layout.tokenFile, `${input.token}\n`, created);
  writeNoting(settings, created);
  writeNoting(mcp, created);
  if (legacy.file) writeJsonFile(legacy.file);
  if (!created.includes(layout.recordFile)) created.push(layout.recordFile);
  const newRecord = { scope: layout.scope, created, replacedServer, server, preexisting };
  writeAtomically(layout.recordFile, `${JSON.stringify(newRecord, null, 2)}\n`, 0o600);
  return { warnings: legacy.warnings };
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

export function uninstall(layout: Layout): UninstallReport {
  const record = readRecord(layout.recordFile);
  const created = record?.created ?? [];
  const preexisting = record?.preexisting ?? [];
  // As in install, every file is read and changed in memory before anything is written.
  const settings = existsSync(layout.settingsFile) ? readJsonFile(layout.settingsFile) : undefined;
  const hooksRemoved = settings ? removeOurHooks(settings.value, settings.path, preexisting) : 0;
  const mcp = existsSync(layout.mcpFile) ? readJsonFile(layout.mcpFile) : undefined;
  // Without a record there is no server of ours: an entry of that name is someone else's.
  const serverRemoved =
    mcp !== undefined && record !== null && removeOurServer(mcp.value, { written: record.server, replaced: record.replacedServer, preexisting });
  const legacy = legacyCleanup(layout);
  const report: UninstallReport = {
    hooksRemoved: hooksRemoved + legacy.removed,
    serverRemoved,
    serverRestored: serverRemoved && record?.replacedServer !== undefined,
    removedFiles: [],
    warnings: legacy.warnings,
  };
  const settle = (file: JsonFile) => {
    if (created.includes(file.path) && isEmptyObject(file.value)) {
      unlinkSync(file.path);
      report.removedFiles.push(file.path);
    } else writeJsonFile(file);
  };

  if (settings && (hooksRemoved > 0 || created.includes(settings.path))) settle(settings);
  if (mcp && (serverRemoved || created.includes(mcp.path))) settle(mcp);
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
