// Where the broker URL, admin token, key file and default mesh come from:
// flags, else environment, else the config file, else defaults.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
// The module alone: this file is loaded by hook forward, which loads no package (zod) it does not need.
import { BEARER_TOKEN, BEARER_TOKEN_RULE } from "@switchboard/protocol/bearer-token";
import { shownUrl } from "@switchboard/protocol/shown-url";
import type { Args } from "./args.ts";
import { CliError, UsageError } from "./errors.ts";

export const DEFAULT_URL = "http://127.0.0.1:7900";

export interface FileConfig {
  url?: string;
  adminToken?: string;
  keyFile?: string;
  mesh?: string;
  audience?: string;
}

export interface Config {
  url: string;
  adminToken: string | undefined;
  keyFile: string;
  /** Named by --key, SWITCHBOARD_KEY or the config file, rather than the default: it must exist. */
  keyFileNamed: boolean;
  mesh: string | undefined;
  /** The broker name the hello is signed for, when not the URL's host (see audience.ts). */
  audience: string | undefined;
  configFile: string;
}

export function homeDir(): string {
  const home = process.env.HOME;
  return home !== undefined && home !== "" ? home : homedir();
}

export function configDir(): string {
  return join(homeDir(), ".config", "switchboard");
}

export function defaultKeyFile(): string {
  return join(configDir(), "key.json");
}

/** `~` is the home directory; a relative path is relative to `from` (the working directory by default). */
export function expandPath(path: string, from = process.cwd()): string {
  if (path === "~") return homeDir();
  if (path.startsWith("~/")) return join(homeDir(), path.slice(2));
  return resolve(from, path);
}

/** An environment variable; an empty one counts as unset. */
export function env(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === "" ? undefined : value;
}

function readFileConfig(path: string, explicit: boolean): FileConfig {
  if (!existsSync(path)) {
    if (explicit) throw new CliError(`config file ${path} does not exist`);
    return {};
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new CliError(`config file ${path} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new CliError(`config file ${path} must hold a JSON object`);
  }
  const out: FileConfig = {};
  for (const key of ["url", "adminToken", "keyFile", "mesh", "audience"] as const) {
    const value = (parsed as Record<string, unknown>)[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== "string") throw new CliError(`config file ${path}: "${key}" must be a string`);
    if (value !== "") out[key] = value;
  }
  return out;
}

function checkUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`broker URL "${url}" is not a URL`);
  }
  // Refused first, and never echoed: the CLI writes the URL where others
  // read it (.mcp.json, the hook commands, its log lines and errors).
  if (parsed.username !== "" || parsed.password !== "") {
    throw new UsageError(`broker URL "${shownUrl(url)}" must have no user or password: the CLI writes the URL into files and logs`);
  }
  if (!["http:", "https:", "ws:", "wss:"].includes(parsed.protocol)) {
    throw new UsageError(`broker URL "${url}" must be http(s):// or ws(s)://`);
  }
  // Routes (/v1/…, /ws, /hook/set-status) are added to its path: behind a query or fragment they would be lost.
  if (/[?#]/.test(url)) throw new UsageError(`broker URL "${url}" must have no query or fragment`);
  return url.replace(/\/+$/, "");
}

export function loadConfig(args: Args): Config {
  const explicitFile = args.nonEmpty("config");
  const configFile = explicitFile !== undefined ? expandPath(explicitFile) : join(configDir(), "config.json");
  const file = readFileConfig(configFile, explicitFile !== undefined);
  // A relative key file in the config file is beside it, wherever the command runs.
  const fileKey = file.keyFile === undefined ? undefined : expandPath(file.keyFile, dirname(configFile));
  const given = args.nonEmpty("key") ?? env("SWITCHBOARD_KEY");
  const keyFile = given !== undefined ? expandPath(given) : fileKey;
  return {
    url: checkUrl(args.nonEmpty("url") ?? env("SWITCHBOARD_URL") ?? file.url ?? DEFAULT_URL),
    adminToken: args.nonEmpty("admin-token") ?? env("SWITCHBOARD_ADMIN_TOKEN") ?? file.adminToken,
    keyFile: keyFile ?? defaultKeyFile(),
    keyFileNamed: keyFile !== undefined,
    mesh: args.nonEmpty("mesh") ?? env("SWITCHBOARD_MESH") ?? file.mesh,
    audience: args.nonEmpty("audience") ?? env("SWITCHBOARD_AUDIENCE") ?? file.audience,
    configFile,
  };
}

/** The HTTP base URL (the admin API and hooks live there), whatever scheme was configured. */
export function httpBase(url: string): string {
  const u = new URL(url);
  if (u.protocol === "ws:") u.protocol = "http:";
  if (u.protocol === "wss:") u.protocol = "https:";
  // A ws URL usually ends in /ws; the HTTP routes are at the root.
  if (u.pathname.endsWith("/ws")) u.pathname = u.pathname.slice(0, -3);
  return u.toString().replace(/\/+$/, "");
}

export function requireMesh(config: Config): string {
  if (config.mesh === undefined) {
    throw new UsageError(`no mesh: pass --mesh M, set SWITCHBOARD_MESH or put "mesh" in ${config.configFile}`);
  }
  return config.mesh;
}

export function requireAdminToken(config: Config): string {
  if (config.adminToken === undefined) {
    throw new UsageError(
      `no admin token: pass --admin-token, set SWITCHBOARD_ADMIN_TOKEN or put "adminToken" in ${config.configFile}`,
    );
  }
  return headerToken(config.adminToken, "the admin token (--admin-token, SWITCHBOARD_ADMIN_TOKEN or \"adminToken\")");
}

/**
 * A token as an Authorization header can carry it. One with whitespace or a
 * control character (the CR of `$(cat token.txt)` from a file with CRLF line
 * ends, say) would fail in fetch, as if the broker were unreachable; so would
 * one beyond Latin-1, and one beyond ASCII reaches the broker as other
 * characters than curl sends (the broker refuses such tokens at start).
 */
export function headerToken(token: string, what: string): string {
  if (!/^[^\s\u0000-\u001f\u007f]+$/.test(token)) {
    throw new UsageError(`${what} holds whitespace or a control character (a line end from a file?), which no Authorization header can carry`);
  }
  if (!BEARER_TOKEN.test(token)) throw new UsageError(`${what} ${BEARER_TOKEN_RULE}`);
  return token;
}
