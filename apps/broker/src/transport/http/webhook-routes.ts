// PUT, GET, DELETE /v1/meshes/:mesh/members/:member/webhook (admin token).
import { webhookBody } from "@switchboard/protocol";
import type { Logger } from "../../log.ts";
import type { WebhookAdmin } from "../../services/webhooks/admin.ts";
import { endpoint, parseBody, type AdminAccess } from "./admin-routes.ts";
import { json } from "./respond.ts";

export function webhookRoutes({ webhooks, access, log }: { webhooks: WebhookAdmin; access: AdminAccess; log: Logger }) {
  const path = "/v1/meshes/:mesh/members/:member/webhook";
  return {
    [path]: endpoint<typeof path>(access, {
      PUT: async (req) => json(200, await webhooks.set(req.params.mesh, req.params.member, await parseBody(req, webhookBody, log))),
      GET: async (req) => json(200, await webhooks.get(req.params.mesh, req.params.member)),
      DELETE: async (req) => json(200, await webhooks.delete(req.params.mesh, req.params.member)),
    }),
  };
}
