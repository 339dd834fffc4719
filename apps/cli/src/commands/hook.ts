// hook install / uninstall: Claude Code status hooks in a settings.json.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command, Context } from "../command.ts";
import { operands } from "../command.ts";
import { expandPath, homeDir, httpBase } from "../config.ts";
import { HOOK_EVENTS, hookCommand, installOurHooks, readSettings, removeOurHooks, writeSettings } from "../claude-settings.ts";
import { UsageError } from "../errors.ts";
import { out, outJson } from "../output.ts";

const SCOPES = ["project", "user"] as const;

function settingsPath(ctx: Context): string {
  const explicit = ctx.args.string("settings");
  const scope = ctx.args.oneOf("scope", SCOPES);
  if (explicit !== undefined) {
    if (scope !== undefined) throw new UsageError("--settings and --scope exclude each other");
    return expandPath(explicit);
  }
  return scope === "user"
    ? join(homeDir(), ".claude", "settings.json")
    : join(process.cwd(), ".claude", "settings.json");
}

const where = { scope: { type: "string" }, settings: { type: "string" } } as const;

export const hookInstall: Command = {
  words: ["hook", "install"],
  usage: "--token T [--url U] [--scope project|user] [--settings FILE]",
  summary: "add the status hooks to Claude Code's settings.json (project: ./.claude, user: ~/.claude)",
  options: { ...where, token: { type: "string" } },
  async run(ctx) {
    operands(ctx, []);
    const token = ctx.args.string("token");
    if (token === undefined) throw new UsageError("--token T is required (create one with `switchboard token create <mesh> <member>`)");
    if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError("--token must be printable characters without spaces");
    const path = settingsPath(ctx);
    const base = httpBase(ctx.config().url);
    const settings = readSettings(path);
    installOurHooks(settings, path, hookCommand(base, token));
    writeSettings(path, settings);
    if (ctx.json) await outJson({ settings: path, url: base, events: HOOK_EVENTS });
    else await out(`installed switchboard hooks for ${HOOK_EVENTS.length} events in ${path} (broker ${base})`);
  },
};

export const hookUninstall: Command = {
  words: ["hook", "uninstall"],
  usage: "[--scope project|user] [--settings FILE]",
  summary: "remove the status hooks again (other hooks stay)",
  options: { ...where },
  async run(ctx) {
    operands(ctx, []);
    const path = settingsPath(ctx);
    let removed = 0;
    if (existsSync(path)) {
      const settings = readSettings(path);
      removed = removeOurHooks(settings, path);
      if (removed > 0) writeSettings(path, settings);
    }
    if (ctx.json) await outJson({ settings: path, removed });
    else await out(removed > 0 ? `removed ${removed} switchboard hook(s) from ${path}` : `no switchboard hooks in ${path}`);
  },
};
