// The MCP server registration in Claude Code's own files: `.mcp.json`
// (project scope) or `~/.claude.json` (user scope), both under "mcpServers".
import { CliError } from "../errors.ts";
import { isObject, type JsonObject } from "../json-file.ts";

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

/**
 * Removes our server, or puts back the entry of that name it replaced; an
 * mcpServers object that only held it goes too. True when something changed.
 */
export function removeOurServer(config: JsonObject, replaced?: unknown): boolean {
  const servers = config.mcpServers;
  if (!isObject(servers) || !Object.hasOwn(servers, SERVER_NAME)) return false;
  if (replaced !== undefined) {
    servers[SERVER_NAME] = replaced as JsonObject;
    return true;
  }
  delete servers[SERVER_NAME];
  if (Object.keys(servers).length === 0) delete config.mcpServers;
  return true;
}
