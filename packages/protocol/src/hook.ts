// The body of POST /hook/set-status: either an explicit status, or Claude
// Code's own hook input piped unchanged (its other fields are ignored).
import { z } from "zod";
import { MAX_SESSION_ID_LENGTH, storable } from "./frames.ts";

export const HOOK_EVENT_STATUS = {
  UserPromptSubmit: "working",
  PreToolUse: "working",
  PostToolUse: "working",
  Stop: "idle",
  StopFailure: "idle",
  SubagentStop: "idle",
  SessionEnd: "idle",
  Notification: "idle",
} as const;
export type HookEventName = keyof typeof HOOK_EVENT_STATUS;

const HOOK_EVENT_NAMES = Object.keys(HOOK_EVENT_STATUS) as [HookEventName, ...HookEventName[]];

/**
 * The hook events the broker knows, as an enum: a lookup with `in` or an
 * index would also accept names inherited from Object.prototype ("toString",
 * "__proto__", "constructor").
 */
export const hookEventName = z.enum(HOOK_EVENT_NAMES);

export { HOOK_PID_HEADER } from "./hook-header.ts";

export const hookBody = z
  .looseObject({
    cwd: storable(z.string().min(1).max(4096)),
    status: z.enum(["idle", "working"]).optional(),
    pid: z.number().int().positive().max(2_147_483_647).optional(),
    session_id: storable(z.string().min(1).max(MAX_SESSION_ID_LENGTH)).optional(),
    hook_event_name: z.string().max(64).optional(),
  })
  .refine((b) => b.status !== undefined || hookEventName.safeParse(b.hook_event_name).success, {
    error: `status (idle|working) is required unless hook_event_name is one of ${HOOK_EVENT_NAMES.join(", ")}`,
  });

export type HookBody = z.infer<typeof hookBody>;

export function hookStatus(body: HookBody): "idle" | "working" {
  if (body.status) return body.status;
  return HOOK_EVENT_STATUS[hookEventName.parse(body.hook_event_name)];
}

export type HookReply =
  | { ok: true; presence_id: string }
  | { ok: true; pending: true }
  | { ok: false; error: string; message?: string };
