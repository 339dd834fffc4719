// POST /hook/set-status: Claude Code hook scripts pipe their input here.
// Errors keep the contract's shape {"ok":false,"error":<code>} (docs/protocol.md).
import { HOOK_PID_HEADER, hookBody, issueText, type HookReply } from "@switchboard/protocol";
import type { Logger } from "../../log.ts";
import type { Metrics } from "../../metrics.ts";
import type { DbHealth } from "../../services/db-health.ts";
import type { HookCaller, HookService } from "../../services/hooks.ts";
import { HTTP_STATUS, type ErrorCode } from "../errors.ts";
import { answerWithin } from "./answer-deadline.ts";
import { ANSWER_DEADLINE_MS, bearerToken, json, readBodyCapped } from "./respond.ts";

const fail = (code: ErrorCode, message: string, headers?: Record<string, string>) =>
  json(HTTP_STATUS[code], { ok: false, error: code, message } satisfies HookReply, headers);

const PID = /^[1-9][0-9]{0,9}$/;

/** The pid a hook command may add as a header; absent or not a pid Postgres can store → none. */
function headerPid(req: Request): number | undefined {
  const raw = req.headers.get(HOOK_PID_HEADER)?.trim() ?? "";
  if (!PID.test(raw)) return undefined;
  const pid = Number(raw);
  return pid <= 2_147_483_647 ? pid : undefined;
}

export function hookRoutes(deps: {
  hooks: HookService;
  dbHealth: DbHealth;
  metrics: Metrics;
  log: Logger;
  maxMessageBytes: number;
}) {
  const { hooks, dbHealth, metrics, log, maxMessageBytes } = deps;
  // A hook that failed because the database went away is a warning, as a
  // socket frame's is, not an error report per session's hook: the outage
  // itself is reported where it is seen.
  const failed = (error: unknown): Response => {
    if (dbHealth.unavailable(error)) {
      log.warn({ err: error }, "hook failed");
      return fail("unavailable", "the database is unavailable");
    }
    log.error({ err: error }, "hook failed");
    return fail("internal", "the broker could not handle this hook");
  };
  async function handle(req: Request): Promise<Response> {
    metrics.hookRequests.inc();
    const token = bearerToken(req);
    if (token === null) return fail("unauthorized", "Authorization: Bearer <hook token> is required");
    // The token before the body: a revoked hook is told so, whatever it sends.
    let caller: HookCaller | null;
    try {
      caller = await hooks.authenticate(token);
    } catch (error) {
      return failed(error);
    }
    if (caller === null) return fail("unauthorized", "unknown or revoked hook token");
    // Claude Code's own input, piped unchanged, carries the prompt or the last answer: the refusal says what to send instead.
    const raw = await readBodyCapped(req, maxMessageBytes, log, `${maxMessageBytes} bytes (MAX_MESSAGE_BYTES); send only cwd, session_id and hook_event_name, not the prompt or answer`);
    if (typeof raw !== "string") return fail(raw.code, raw.message, raw.headers);
    let parsedJson: unknown;
    try {
      parsedJson = JSON.parse(raw);
    } catch {
      return fail("invalid", "the body is not valid JSON");
    }
    const body = hookBody.safeParse(parsedJson);
    if (!body.success) {
      return fail("invalid", issueText(body.error, parsedJson, "body"));
    }
    try {
      const outcome = await hooks.handle(caller, body.data, headerPid(req));
      if (!outcome.ok) return fail(outcome.code, outcome.message);
      return json(200, "pending" in outcome ? { ok: true, pending: true } : { ok: true, presence_id: outcome.presenceId });
    } catch (error) {
      return failed(error);
    }
  }

  const late = () => fail("unavailable", `the database did not answer within ${ANSWER_DEADLINE_MS / 1000} s; the status may still be applied`);
  return {
    "/hook/set-status": {
      POST: (req: Request) => answerWithin(req, () => handle(req), ANSWER_DEADLINE_MS, late),
    },
  };
}
