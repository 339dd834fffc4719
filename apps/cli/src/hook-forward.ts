// What an installed hook runs: Claude Code's hook input (stdin) reduced to the
// fields the broker needs — session_id, cwd, hook_event_name and the
// notification's type — never the prompt or anything else of the session,
// POSTed to /hook/set-status with the token from its 0600 file and Claude
// Code's pid. Bounded in time; it reports what went wrong but never fails.
import { HOOK_PID_HEADER } from "@switchboard/protocol/hook-header";
import { readFileSync } from "node:fs";

export const FORWARD_DEADLINE_MS = 5000;

/** Characters of an answer the outcome quotes: the broker's own answers are shorter; a proxy's error page need not be. */
const ANSWER_SHOWN = 500;

interface ClaudeHookInput {
  session_id?: string;
  cwd: string;
  hook_event_name: string;
  notification_type?: string;
}

// Read by hand, not with a zod schema: Claude Code waits for this on every
// prompt and turn end, and loading zod was most of its time. Its input is
// Claude Code's, not a frame of ours; the broker checks what it is sent.
function claudeHookInput(json: unknown): ClaudeHookInput | null {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return null;
  const { session_id, cwd, hook_event_name, notification_type } = json as Record<string, unknown>;
  const text = (v: unknown): v is string => typeof v === "string" && v !== "";
  if (!text(cwd) || !text(hook_event_name)) return null;
  if (session_id !== undefined && !text(session_id)) return null;
  if (notification_type !== undefined && typeof notification_type !== "string") return null;
  return { cwd, hook_event_name, ...(session_id === undefined ? {} : { session_id }), ...(notification_type === undefined ? {} : { notification_type }) };
}

export interface ForwardOptions {
  url: string;
  tokenFile: string;
  pid: number | undefined;
  input: string;
  signal: AbortSignal;
}

/** Returns what happened, in a few words. */
export async function forwardHook(options: ForwardOptions): Promise<string> {
  let json: unknown;
  try {
    json = JSON.parse(options.input);
  } catch {
    return "skipped: the hook input is not JSON";
  }
  const parsed = claudeHookInput(json);
  if (parsed === null) return "skipped: the hook input has no cwd or hook_event_name";
  const { session_id, cwd, hook_event_name, notification_type } = parsed;
  // Only the idle prompt means the turn is over; a permission prompt comes mid-turn.
  if (hook_event_name === "Notification" && notification_type !== undefined && notification_type !== "idle_prompt") {
    return `skipped: notification ${notification_type}`;
  }
  const token = readFileSync(options.tokenFile, "utf8").trim();
  // Sent, it would come back as "Authorization: Bearer <hook token> is required", which points at the wrong thing.
  if (token === "") return `skipped: the token file ${options.tokenFile} is empty`;
  const body = { cwd, hook_event_name, ...(session_id ? { session_id } : {}), ...(notification_type ? { notification_type } : {}) };
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  if (options.pid !== undefined) headers[HOOK_PID_HEADER] = String(options.pid);
  const res = await fetch(`${options.url}/hook/set-status`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
    signal: options.signal,
  });
  const text = await res.text();
  return `${res.status} ${text.length > ANSWER_SHOWN ? `${text.slice(0, ANSWER_SHOWN)}… (${text.length} characters)` : text}`;
}
