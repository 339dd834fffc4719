// Which files an install of one scope touches. Project scope: the project's
// .mcp.json and .claude/settings.local.json (not meant to be committed); user
// scope: ~/.claude.json and ~/.claude/settings.json (both in $CLAUDE_CONFIG_DIR
// when Claude Code is told to keep its files there). Either way the hook token
// and the record of what the install created live under
// ~/.config/switchboard/hooks/, never inside the project tree.
import { createHash } from "node:crypto";
import { existsSync, realpathSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { configDir, homeDir } from "../config.ts";

export const SCOPES = ["project", "user"] as const;
export type Scope = (typeof SCOPES)[number];

export interface Layout {
  scope: Scope;
  /** Where the MCP server is registered. */
  mcpFile: string;
  /** Where the hooks go. */
  settingsFile: string;
  /** Earlier versions wrote their hooks, token inline, into the project's shared settings.json. */
  legacySettingsFile: string | undefined;
  tokenDir: string;
  tokenFile: string;
  recordFile: string;
}

/** The record of an install, beside its token file. */
export function recordFileOf(tokenFile: string): string {
  return tokenFile.replace(/\.token$/, ".install.json");
}

/**
 * Claude Code's user-level files. CLAUDE_CONFIG_DIR moves ~/.claude, and
 * ~/.claude.json into it: files written to the usual places would never be read.
 */
function userFiles(): { mcpFile: string; settingsFile: string } {
  const moved = process.env.CLAUDE_CONFIG_DIR;
  if (moved !== undefined && moved !== "") {
    const dir = resolve(moved);
    return { mcpFile: join(dir, ".claude.json"), settingsFile: join(dir, "settings.json") };
  }
  return { mcpFile: join(homeDir(), ".claude.json"), settingsFile: join(homeDir(), ".claude", "settings.json") };
}

const sameDir = (a: string, b: string) => existsSync(a) && existsSync(b) && realpathSync(a) === realpathSync(b);

export function layoutFor(scope: Scope, projectDir: string = process.cwd()): Layout {
  const tokenDir = join(configDir(), "hooks");
  if (scope === "user") {
    const tokenFile = join(tokenDir, "user.token");
    return {
      scope,
      ...userFiles(),
      legacySettingsFile: undefined,
      tokenDir,
      tokenFile,
      recordFile: recordFileOf(tokenFile),
    };
  }
  // One token per project directory: two projects may act as two members.
  const real = realpathSync(projectDir);
  const id = `project-${createHash("sha256").update(real).digest("hex").slice(0, 16)}`;
  // In the home directory (or wherever CLAUDE_CONFIG_DIR is) that file is the user's settings, where a user-scope install's hooks live.
  const atUser = sameDir(join(projectDir, ".claude"), dirname(userFiles().settingsFile));
  const tokenFile = join(tokenDir, `${id}.token`);
  return {
    scope,
    mcpFile: join(projectDir, ".mcp.json"),
    settingsFile: join(projectDir, ".claude", "settings.local.json"),
    legacySettingsFile: atUser ? undefined : join(projectDir, ".claude", "settings.json"),
    tokenDir,
    tokenFile,
    recordFile: recordFileOf(tokenFile),
  };
}
