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

export function setOurServer(config: JsonObject, path: string, server: StdioServer): void {
  const servers = config.mcpServers ?? (config.mcpServers = {});
  if (!isObject(servers)) throw new CliError(`${path}: "mcpServers" is not an object; not touching it`);
  servers[SERVER_NAME] = { ...server };
}

/** Removes our server; an mcpServers object that only held it goes too. True when something was removed. */
export function removeOurServer(config: JsonObject): boolean {
  const servers = config.mcpServers;
  if (!isObject(servers) || !Object.hasOwn(servers, SERVER_NAME)) return false;
  delete servers[SERVER_NAME];
  if (Object.keys(servers).length === 0) delete config.mcpServers;
  return true;
}
