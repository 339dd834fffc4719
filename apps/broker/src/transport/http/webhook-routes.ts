// PUT, GET, DELETE /v1/meshes/:mesh/members/:member/webhook (admin token).
import { webhookBody } from "@switchboard/protocol";
import type { Logger } from "../../log.ts";
import type { WebhookAdmin } from "../../services/webhooks/admin.ts";
import { endpoint, parseBody, type AdminAccess } from "./admin-routes.ts";
import { ANSWER_DEADLINE_MS, json } from "./respond.ts";

export interface WebhookRouteDeps {
  webhooks: WebhookAdmin;
  access: AdminAccess;
  log: Logger;
  /** How long a PUT may wait for the target's name to resolve (WEBHOOK_TIMEOUT_MS), on top of the database. */
  lookupTimeoutMs: number;
}

export function webhookRoutes({ webhooks, access, log, lookupTimeoutMs }: WebhookRouteDeps) {
  const path = "/v1/meshes/:mesh/members/:member/webhook";
  return {
    [path]: endpoint<typeof path>(
      access,
      {
        PUT: async (req) => json(200, await webhooks.set(req.params.mesh, req.params.member, await parseBody(req, webhookBody, log))),
        GET: async (req) => json(200, await webhooks.get(req.params.mesh, req.params.member)),
        DELETE: async (req) => json(200, await webhooks.delete(req.params.mesh, req.params.member)),
      },
      // A name that does not resolve in time is refused `invalid` (docs/http.md), not cut short as a database stall.
      { PUT: ANSWER_DEADLINE_MS + lookupTimeoutMs },
    ),
  };
}
