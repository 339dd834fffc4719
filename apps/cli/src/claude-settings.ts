// Claude Code settings.json editing for the status hooks: pure functions on
// the parsed JSON, plus an atomic read/write. Only entries whose command
// carries HOOK_MARKER are ever touched.
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { CliError } from "./errors.ts";

export const HOOK_MARKER = "# switchboard-hook";
export const HOOK_EVENTS = [
  "UserPromptSubmit",
  "PreToolUse",
  "PostToolUse",
  "Stop",
  "SubagentStop",
  "SessionEnd",
  "Notification",
] as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

const isObject = (v: Json | undefined): v is JsonObject => v !== null && typeof v === "object" && !Array.isArray(v);

/** A single-quoted sh word. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * The hook command: Claude Code's hook input (stdin) goes unchanged to the
 * broker. Bounded by curl's timeout and always exits 0, so a broker that is
 * down never blocks or fails Claude Code. $PPID is Claude Code itself.
 */
export function hookCommand(baseUrl: string, token: string): string {
  return [
    "curl -sS -m 5 -X POST",
    shellQuote(`${baseUrl}/hook/set-status`),
    "-H",
    shellQuote(`Authorization: Bearer ${token}`),
    "-H",
    shellQuote("Content-Type: application/json"),
    "-H",
    `"X-Switchboard-Pid: $PPID"`,
    "--data-binary @- >/dev/null 2>&1 || true",
    HOOK_MARKER,
  ].join(" ");
}

function isOurs(hook: Json): boolean {
  return isObject(hook) && typeof hook.command === "string" && hook.command.includes(HOOK_MARKER);
}

function hooksObject(settings: JsonObject, path: string): JsonObject | undefined {
  const hooks = settings.hooks;
  if (hooks === undefined) return undefined;
  if (!isObject(hooks)) throw new CliError(`${path}: "hooks" is not an object; not touching it`);
  return hooks;
}

/**
 * Removes our entries from every event. Leaves nothing empty behind that our
 * removal emptied (a matcher group, an event's list, the hooks object), and
 * keeps everything else, including empty things that were there before.
 */
export function removeOurHooks(settings: JsonObject, path: string): number {
  const hooks = hooksObject(settings, path);
  if (hooks === undefined) return 0;
  let removed = 0;
  for (const event of Object.keys(hooks)) {
    const groups = hooks[event];
    if (!Array.isArray(groups)) continue;
    const kept: Json[] = [];
    let changed = false;
    for (const group of groups) {
      if (!isObject(group) || !Array.isArray(group.hooks) || !group.hooks.some(isOurs)) {
        kept.push(group);
        continue;
      }
      const rest = group.hooks.filter((h) => !isOurs(h));
      removed += group.hooks.length - rest.length;
      changed = true;
      if (rest.length > 0) kept.push({ ...group, hooks: rest });
    }
    if (!changed) continue;
    if (kept.length > 0) hooks[event] = kept;
    else delete hooks[event];
  }
  if (removed > 0 && Object.keys(hooks).length === 0) delete settings.hooks;
  return removed;
}

/** Our one entry per event, replacing any earlier one (so a new token or URL wins). */
export function installOurHooks(settings: JsonObject, path: string, command: string): void {
  removeOurHooks(settings, path);
  const hooks = hooksObject(settings, path) ?? (settings.hooks = {});
  for (const event of HOOK_EVENTS) {
    const groups = hooks[event] ?? (hooks[event] = []);
    if (!Array.isArray(groups)) throw new CliError(`${path}: "hooks.${event}" is not a list; not touching it`);
    // PreToolUse/PostToolUse match on the tool name; "" matches every tool.
    groups.push({ matcher: "", hooks: [{ type: "command", command }] });
  }
}

export function readSettings(path: string): JsonObject {
  if (!existsSync(path)) return {};
  const text = readFileSync(path, "utf8");
  if (text.trim() === "") return {};
  let parsed: Json;
  try {
    parsed = JSON.parse(text) as Json;
  } catch (error) {
    throw new CliError(`${path} is not valid JSON (${error instanceof Error ? error.message : String(error)}); not touching it`);
  }
  if (!isObject(parsed)) throw new CliError(`${path} does not hold a JSON object; not touching it`);
  return parsed;
}

/** Temp file in the same directory, then rename: readers see the old file or the new one. */
export function writeSettings(path: string, settings: JsonObject): void {
  // Write through a symlink to its target rather than replacing the link.
  const target = existsSync(path) ? realpathSync(path) : path;
  mkdirSync(dirname(target), { recursive: true });
  // A new file holds a bearer token: private. An existing file keeps its mode.
  const mode = existsSync(target) ? statSync(target).mode & 0o777 : 0o600;
  const tmp = join(dirname(target), `.${basename(target)}.switchboard-${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(settings, null, 2)}\n`, { mode });
  renameSync(tmp, target);
}
