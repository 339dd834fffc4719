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

/** A stdio server entry's command and args, when it has them. */
export function stdioServer(value: unknown): StdioServer | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { command, args } = value as { command?: unknown; args?: unknown };
  if (typeof command !== "string" || !Array.isArray(args) || !args.every((a) => typeof a === "string")) return undefined;
  return { type: "stdio", command, args };
}

/**
 * An entry that runs this command's `mcp`, as install writes it: ours by its
 * content even where no record says so (the project moved, the record was lost).
 */
export function isOurServer(value: unknown, self: { command: string; args: string[] }): boolean {
  const entry = stdioServer(value);
  if (entry === undefined || entry.command !== self.command) return false;
  return [...self.args, "mcp"].every((arg, i) => entry.args[i] === arg);
}

/** Keys Claude Code reads only from a remote (http, sse) server entry: a stdio entry has no use for them. */
const REMOTE_ONLY = new Set(["url", "headers", "headersHelper", "oauth"]);

/** What of an entry may stay in a stdio one: all but a remote server's own keys. */
const stdioKeys = (entry: JsonObject): JsonObject => Object.fromEntries(Object.entries(entry).filter(([key]) => !REMOTE_ONLY.has(key)));

/**
 * Registers our server; returns the entry of that name it replaced, if there
 * was one. An entry of ours from an earlier install keeps what the user added
 * to it (`env`, `timeout`, …) but not the keys of a remote server (it may have
 * been made one since); only type, command and args are ours to set.
 */
export function setOurServer(config: JsonObject, path: string, server: StdioServer, ours: (entry: Json) => boolean): Json | undefined {
  // Only an absent one is made: null is a value that is not an object, as in the hooks, not one to overwrite.
  const servers = Object.hasOwn(config, "mcpServers") ? config.mcpServers : (config.mcpServers = {});
  if (!isObject(servers)) throw new CliError(`${path}: "mcpServers" is not an object; not touching it`);
  const before = servers[SERVER_NAME];
  servers[SERVER_NAME] = isObject(before) && ours(before) ? { ...stdioKeys(before), ...server } : { ...server };
  return before;
}

/** The mcpServers object, when the file has one: an install finding it there leaves it there. */
export function serverContainers(config: JsonObject): string[] {
  return isObject(config.mcpServers) ? ["mcpServers"] : [];
}

export interface OurServer {
  /** Whether the entry of our name is still ours to take out. */
  isOurs: (entry: Json | undefined) => boolean;
  /** The entry of our name the first install replaced, to be put back. */
  replaced: unknown;
  /** Containers found before the first install (serverContainers). */
  preexisting: readonly string[];
}

/**
 * The entry is still the one install wrote (`written`, from its record; a
 * record of an earlier version did not note it): its command and args (type
 * aside) are ours; the rest the user may have added.
 */
export function isWritten(entry: Json | undefined, written: StdioServer | undefined): boolean {
  if (written === undefined) return true;
  return isObject(entry) && entry.command === written.command && JSON.stringify(entry.args) === JSON.stringify(written.args);
}

/**
 * Removes our server, or puts back the entry of that name the install
 * replaced; an mcpServers object that only held it goes too, unless it was
 * there before. An entry that is not ours (the user's, or one they put in its
 * place since) stays. True when something changed.
 */
export function removeOurServer(config: JsonObject, ours: OurServer): boolean {
  const servers = config.mcpServers;
  if (!isObject(servers) || !Object.hasOwn(servers, SERVER_NAME)) return false;
  if (!ours.isOurs(servers[SERVER_NAME])) return false;
  if (ours.replaced !== undefined) {
    servers[SERVER_NAME] = ours.replaced as JsonObject;
    return true;
  }
  delete servers[SERVER_NAME];
  if (Object.keys(servers).length === 0 && !ours.preexisting.includes("mcpServers")) delete config.mcpServers;
  return true;
}
