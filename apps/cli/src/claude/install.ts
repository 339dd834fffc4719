// install / uninstall for Claude Code: the MCP server registration, the status
// hooks, the hook token file, and a record of the files and directories the
// install created, so uninstall takes back exactly what it added.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { CliError } from "../errors.ts";
import { isEmptyObject, readJsonFile, writeAtomically, writeJsonFile, type JsonFile } from "../json-file.ts";
import { hookCommand, installOurHooks, removeOurHooks } from "./hooks.ts";
import type { Layout } from "./layout.ts";
import { removeOurServer, setOurServer, type StdioServer } from "./mcp-config.ts";

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
}

function readRecord(path: string): InstallRecord | null {
  if (!existsSync(path)) return null;
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as { created?: unknown; replacedServer?: unknown };
    const created = Array.isArray(parsed.created) ? parsed.created.filter((p): p is string => typeof p === "string") : [];
    return { created, replacedServer: parsed.replacedServer };
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

export function install(input: InstallInput): void {
  const { layout } = input;
  const record = readRecord(layout.recordFile);
  const created = record?.created ?? [];
  // Every file is read and changed in memory first: one that cannot be read stops the install before anything is written.
  const settings = readJsonFile(layout.settingsFile);
  installOurHooks(settings.value, settings.path, hookCommand(input.self, input.hookUrl, layout.tokenFile));
  const mcp = readJsonFile(layout.mcpFile);
  const server: StdioServer = { type: "stdio", command: input.self.command, args: [...input.self.args, ...input.mcpArgs] };
  const before = setOurServer(mcp.value, mcp.path, server, record !== null);
  // Installed again, the entry there is our own: what the first install replaced stays the one to put back.
  const replacedServer = record === null ? before : record.replacedServer;
  const legacy = withoutLegacyHooks(layout);

  ensureDir(layout.tokenDir, created, 0o700);
  writeSecret(layout.tokenFile, `${input.token}\n`, created);
  writeNoting(settings, created);
  writeNoting(mcp, created);
  if (legacy) writeJsonFile(legacy.file);
  if (!created.includes(layout.recordFile)) created.push(layout.recordFile);
  writeAtomically(layout.recordFile, `${JSON.stringify({ scope: layout.scope, created, replacedServer }, null, 2)}\n`, 0o600);
}

/** Hooks an earlier version put into the project's shared settings.json, bearer token and all: the file without them, if there were any. */
function withoutLegacyHooks(layout: Layout): { file: JsonFile; removed: number } | null {
  const path = layout.legacySettingsFile;
  if (path === undefined || !existsSync(path)) return null;
  const file = readJsonFile(path);
  const removed = removeOurHooks(file.value, path);
  return removed > 0 ? { file, removed } : null;
}

export interface UninstallReport {
  hooksRemoved: number;
  serverRemoved: boolean;
  /** The server of that name the install had replaced is back in its place. */
  serverRestored: boolean;
  removedFiles: string[];
}

export function uninstall(layout: Layout): UninstallReport {
  const record = readRecord(layout.recordFile);
  const created = record?.created ?? [];
  const report: UninstallReport = { hooksRemoved: 0, serverRemoved: false, serverRestored: false, removedFiles: [] };
  const settle = (file: JsonFile) => {
    if (created.includes(file.path) && isEmptyObject(file.value)) {
      unlinkSync(file.path);
      report.removedFiles.push(file.path);
    } else writeJsonFile(file);
  };

  if (existsSync(layout.settingsFile)) {
    const settings = readJsonFile(layout.settingsFile);
    report.hooksRemoved = removeOurHooks(settings.value, settings.path);
    if (report.hooksRemoved > 0 || created.includes(settings.path)) settle(settings);
  }
  if (existsSync(layout.mcpFile)) {
    const mcp = readJsonFile(layout.mcpFile);
    report.serverRemoved = removeOurServer(mcp.value, record?.replacedServer);
    report.serverRestored = report.serverRemoved && record?.replacedServer !== undefined;
    if (report.serverRemoved || created.includes(mcp.path)) settle(mcp);
  }
  const legacy = withoutLegacyHooks(layout);
  if (legacy) {
    report.hooksRemoved += legacy.removed;
    writeJsonFile(legacy.file);
  }
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
