// The status hooks in a Claude Code settings file. Only hook entries whose
// command carries HOOK_MARKER are ever touched; everything else stays as it is.
import { CliError } from "../errors.ts";
import { isObject, type Json, type JsonObject } from "../json-file.ts";

export const HOOK_MARKER = "# switchboard-hook";

/**
 * Turn boundaries only: a prompt starts a turn; Stop, StopFailure (a turn
 * ended by an API error) and the idle prompt end one. Not SubagentStop,
 * SessionEnd, PreToolUse or PostToolUse: they fire mid-turn or too often.
 */
export const HOOK_EVENTS: ReadonlyArray<{ event: string; matcher?: string }> = [
  { event: "UserPromptSubmit" },
  { event: "Stop" },
  { event: "StopFailure" },
  { event: "Notification", matcher: "idle_prompt" },
];

/** Seconds Claude Code gives the hook; the forwarder itself gives up after 5. */
const HOOK_TIMEOUT_SECONDS = 10;

/** A single-quoted sh word. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * The hook command: `switchboard hook forward` with Claude Code's hook input
 * on stdin. $PPID, expanded by the shell Claude Code runs the hook in, is
 * Claude Code itself. Output is discarded and failure ignored, so a broker
 * that is down never blocks or fails a turn.
 */
export function hookCommand(self: { command: string; args: string[] }, url: string, tokenFile: string): string {
  return [
    ...[self.command, ...self.args, "hook", "forward", "--url", url, "--token-file", tokenFile].map(shellQuote),
    '--pid "$PPID" >/dev/null 2>&1 || true',
    HOOK_MARKER,
  ].join(" ");
}

/** The token file a command of hookCommand's reads. */
export function tokenFileOf(command: string): string | undefined {
  const quoted = /'--token-file' '((?:[^']|'\\'')*)'/.exec(command)?.[1];
  return quoted?.replaceAll("'\\''", "'");
}

function isOurs(hook: Json): hook is JsonObject & { command: string } {
  return isObject(hook) && typeof hook.command === "string" && hook.command.includes(HOOK_MARKER);
}

/** Our hook entries in the settings, in every event's groups. */
function ourEntries(settings: JsonObject): Array<JsonObject & { command: string }> {
  const hooks = settings.hooks;
  if (!isObject(hooks)) return [];
  return Object.values(hooks)
    .flatMap((groups) => (Array.isArray(groups) ? groups : []))
    .flatMap((group) => (isObject(group) && Array.isArray(group.hooks) ? group.hooks : []))
    .filter(isOurs);
}

/** The token files our entries read, each once: ones installed for another directory read that one's. */
export function ourTokenFiles(settings: JsonObject): string[] {
  const files = ourEntries(settings).map((hook) => tokenFileOf(hook.command));
  return [...new Set(files.filter((file) => file !== undefined))];
}

/** Whether the settings hold any hook of ours. */
export function hasOurHooks(settings: JsonObject): boolean {
  return ourEntries(settings).length > 0;
}

function hooksObject(settings: JsonObject, path: string): JsonObject | undefined {
  const hooks = settings.hooks;
  if (hooks === undefined) return undefined;
  if (!isObject(hooks)) throw new CliError(`${path}: "hooks" is not an object; not touching it`);
  return hooks;
}

/** The hooks object and its event lists, as "hooks" and "hooks.<event>": an install finding them there leaves them there. */
export function hookContainers(settings: JsonObject): string[] {
  const hooks = settings.hooks;
  if (!isObject(hooks)) return [];
  return ["hooks", ...Object.keys(hooks).filter((event) => Array.isArray(hooks[event])).map((event) => `hooks.${event}`)];
}

/**
 * Removes our entries from every event (earlier versions installed others).
 * What our removal emptied (a matcher group, an event's list, the hooks
 * object) goes too, unless it is in `preexisting` (hookContainers before the
 * first install); everything else stays, empty things that were there included.
 */
export function removeOurHooks(settings: JsonObject, path: string, preexisting: readonly string[] = []): number {
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
    if (kept.length > 0 || preexisting.includes(`hooks.${event}`)) hooks[event] = kept;
    else delete hooks[event];
  }
  if (removed > 0 && Object.keys(hooks).length === 0 && !preexisting.includes("hooks")) delete settings.hooks;
  return removed;
}

/** The index of the first group of an event's list that holds an entry of ours. */
function ourGroupIndex(settings: JsonObject, event: string): number | undefined {
  const groups = isObject(settings.hooks) ? settings.hooks[event] : undefined;
  if (!Array.isArray(groups)) return undefined;
  const index = groups.findIndex((group) => isObject(group) && Array.isArray(group.hooks) && group.hooks.some(isOurs));
  return index < 0 ? undefined : index;
}

/**
 * Our one entry per event, replacing any earlier one (so a new token file or
 * URL wins) in its place: installed again, the file changes only where our
 * entries do, whatever was added around them since.
 */
export function installOurHooks(settings: JsonObject, path: string, command: string, preexisting: readonly string[]): void {
  const places = new Map(HOOK_EVENTS.map(({ event }) => [event, ourGroupIndex(settings, event)]));
  // The hooks object and our events' lists get our entries back at once: taken out and added anew, they would move to the end.
  removeOurHooks(settings, path, [...preexisting, "hooks", ...HOOK_EVENTS.map(({ event }) => `hooks.${event}`)]);
  const hooks = hooksObject(settings, path) ?? (settings.hooks = {});
  for (const { event, matcher } of HOOK_EVENTS) {
    // Only an absent event gets a list: null is a value that is not one, like any other.
    const groups = Object.hasOwn(hooks, event) ? hooks[event] : (hooks[event] = []);
    if (!Array.isArray(groups)) throw new CliError(`${path}: "hooks.${event}" is not a list; not touching it`);
    const entry = { type: "command", command, timeout: HOOK_TIMEOUT_SECONDS };
    // Groups before the first that held ours were not touched by the removal: that index is still our place.
    groups.splice(places.get(event) ?? groups.length, 0, matcher === undefined ? { hooks: [entry] } : { matcher, hooks: [entry] });
  }
}
