// POST /hook/set-status: Claude Code hook scripts pipe their input here.
import { HOOK_PID_HEADER, hookBody, type HookReply } from "@switchboard/protocol";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { isDbUnavailable, type DbHealth } from "../services/db-health.ts";
import type { HookService } from "../services/hooks.ts";
import { bearerToken, json, readBodyCapped } from "./respond.ts";

const fail = (status: number, error: string) => json(status, { ok: false, error } satisfies HookReply);

export function hookRoutes(deps: {
  hooks: HookService;
  dbHealth: DbHealth;
  metrics: Metrics;
  log: Logger;
  maxMessageBytes: number;
}) {
  const { hooks, dbHealth, metrics, log, maxMessageBytes } = deps;
  return {
    "/hook/set-status": {
      POST: async (req: Request) => {
        metrics.hookRequests.inc();
        const token = bearerToken(req);
        if (token === null) return fail(401, "unauthorized");
        const raw = await readBodyCapped(req, maxMessageBytes);
        if (raw === null) return fail(413, "too_large");
        let parsedJson: unknown;
        try {
          parsedJson = JSON.parse(raw);
        } catch {
          return fail(400, "invalid: body is not JSON");
        }
        const body = hookBody.safeParse(parsedJson);
        if (!body.success) {
          const issue = body.error.issues[0];
          return fail(400, `invalid: ${issue?.path.join(".") || "body"}: ${issue?.message ?? "bad body"}`);
        }
        const headerPid = Number(req.headers.get(HOOK_PID_HEADER) ?? "");
        try {
          const result = await hooks.handle(
            token,
            body.data,
            Number.isInteger(headerPid) && headerPid > 0 ? headerPid : undefined,
          );
          return json(result.httpStatus, result.body);
        } catch (error) {
          log.error({ err: error }, "hook failed");
          return isDbUnavailable(error, dbHealth) ? fail(503, "database unavailable") : fail(500, "internal");
        }
      },
    },
  };
}
