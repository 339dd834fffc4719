// What an installed hook runs: Claude Code's hook input (stdin) reduced to the
// fields the broker needs — session_id, cwd, hook_event_name and the
// notification's type — never the prompt or anything else of the session,
// POSTed to /hook/set-status with the token from its 0600 file and Claude
// Code's pid. Bounded in time; it reports what went wrong but never fails.
import { HOOK_PID_HEADER } from "@switchboard/protocol";
import { readFileSync } from "node:fs";
import { z } from "zod";

export const FORWARD_DEADLINE_MS = 5000;

/** Characters of an answer the outcome quotes: the broker's own answers are shorter; a proxy's error page need not be. */
const ANSWER_SHOWN = 500;

const claudeHookInput = z.looseObject({
  session_id: z.string().min(1).optional(),
  cwd: z.string().min(1),
  hook_event_name: z.string().min(1),
  notification_type: z.string().optional(),
});

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
  const parsed = claudeHookInput.safeParse(json);
  if (!parsed.success) return "skipped: the hook input has no cwd or hook_event_name";
  const { session_id, cwd, hook_event_name, notification_type } = parsed.data;
  // Only the idle prompt means the turn is over; a permission prompt comes mid-turn.
  if (hook_event_name === "Notification" && notification_type !== undefined && notification_type !== "idle_prompt") {
    return `skipped: notification ${notification_type}`;
  }
  const token = readFileSync(options.tokenFile, "utf8").trim();
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
