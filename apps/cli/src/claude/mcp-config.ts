// The MCP server registration in Claude Code's own files: `.mcp.json`
// (project scope) or `~/.claude.json` (user scope), both under "mcpServers".
import { CliError } from "../errors.ts";
import { isObject, type Json, type JsonObject } from "../json-file.ts";

export const SERVER_NAME = "switchboard";

export interface StdioServer {
  type: "stdio";
  command: string;
  args: string[];
}

/**
 * Registers our server; returns the entry of that name it replaced, if there
 * was one. An entry of ours from an earlier install keeps what the user added
 * to it (`env`, `timeout`, …); only type, command and args are ours to set.
 */
export function setOurServer(config: JsonObject, path: string, server: StdioServer, ours: boolean): unknown {
  const servers = config.mcpServers ?? (config.mcpServers = {});
  if (!isObject(servers)) throw new CliError(`${path}: "mcpServers" is not an object; not touching it`);
  const before = servers[SERVER_NAME];
  servers[SERVER_NAME] = ours && isObject(before) ? { ...before, ...server } : { ...server };
  return before;
}

/** The mcpServers object, when the file has one: an install finding it there leaves it there. */
export function serverContainers(config: JsonObject): string[] {
  return isObject(config.mcpServers) ? ["mcpServers"] : [];
}

export interface OurServer {
  /** The entry install last wrote; undefined in a record of an earlier version, which did not note it. */
  written: StdioServer | undefined;
  /** The entry of our name the first install replaced, to be put back. */
  replaced: unknown;
  /** Containers found before the first install (serverContainers). */
  preexisting: readonly string[];
}

/** The entry is still the one install wrote: its command and args (type aside) are ours; the rest the user may have added. */
function isWritten(entry: Json | undefined, written: StdioServer | undefined): boolean {
  if (written === undefined) return true;
  return isObject(entry) && entry.command === written.command && JSON.stringify(entry.args) === JSON.stringify(written.args);
}

/**
 * Removes the server install wrote, or puts back the entry of that name it
 * replaced; an mcpServers object that only held it goes too, unless it was
 * there before. An entry the user has since replaced is theirs and stays.
 * True when something changed.
 */
export function removeOurServer(config: JsonObject, ours: OurServer): boolean {
  const servers = config.mcpServers;
  if (!isObject(servers) || !Object.hasOwn(servers, SERVER_NAME)) return false;
  if (!isWritten(servers[SERVER_NAME], ours.written)) return false;
  if (ours.replaced !== undefined) {
    servers[SERVER_NAME] = ours.replaced as JsonObject;
    return true;
  }
  delete servers[SERVER_NAME];
  if (Object.keys(servers).length === 0 && !ours.preexisting.includes("mcpServers")) delete config.mcpServers;
  return true;
}
