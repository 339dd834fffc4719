// The admin API (/v1, bearer ADMIN_TOKEN) as Bun.serve routes. Each path is
// one handler that checks the token, then dispatches on the method, so a
// known path with an unknown method gets a JSON 405 instead of the 404 fallback.
import { addMemberBody, createMeshBody, createTokenBody, issueText } from "@switchboard/protocol";
import type { BunRequest, Server } from "bun";
import type { z } from "zod";
import type { Logger } from "../../log.ts";
import type { AdminService } from "../../services/admin.ts";
import { RefusedError } from "../../services/outcome.ts";
import type { DbHealth } from "../../services/db-health.ts";
import { answerWithin } from "./answer-deadline.ts";
import { methodNotAllowed } from "./methods.ts";
import {
  ANSWER_DEADLINE_MS,
  apiError,
  bearerToken,
  bodyRefused,
  dbUnavailable,
  json,
  readBodyCapped,
  sameSecret,
  unnamable,
  type BodyRefusal,
} from "./respond.ts";

type Method = "GET" | "POST" | "PUT" | "DELETE";
type Handler<P extends string> = (req: BunRequest<P>, server: Server<unknown>) => Promise<Response>;

class InvalidBody extends Error {}
class BodyNotRead extends Error {
  constructor(readonly refusal: BodyRefusal) {
    super(refusal.message);
  }
}

// Admin bodies are a few hundred bytes; anything near this is a mistake.
const ADMIN_BODY_MAX_BYTES = 64 * 1024;

export async function parseBody<T>(req: Request, schema: z.ZodType<T>, log: Logger): Promise<T> {
  const text = await readBodyCapped(req, ADMIN_BODY_MAX_BYTES, log);
  if (typeof text !== "string") throw new BodyNotRead(text);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new InvalidBody("the body is not valid JSON");
  }
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw new InvalidBody(issueText(parsed.error, raw, "body"));
}

/** Who may call the admin API, and how a failed call tells a database outage (503) from a fault (500). */
export interface AdminAccess {
  adminToken: string;
  dbHealth: DbHealth;
}

const late = (deadlineMs: number) => () =>
  apiError("unavailable", `the database did not answer within ${deadlineMs / 1000} s; a change asked for may still be applied`, {
    "retry-after": "1",
  });

/**
 * The routes of one path, each method answered within ANSWER_DEADLINE_MS, or
 * within its own deadline in `deadlinesMs` when its handler waits for more
 * than the database (a webhook target's name lookup).
 */
export function endpoint<P extends string>(
  { adminToken, dbHealth }: AdminAccess,
  handlers: Partial<Record<Method, Handler<P>>>,
  deadlinesMs: Partial<Record<Method, number>> = {},
) {
  const byMethod = new Map<string, Handler<P>>(Object.entries(handlers));
  const deadlines = new Map<string, number>(Object.entries(deadlinesMs));
  const allow = [...byMethod.keys()].join(", ");
  return async (req: BunRequest<P>, server: Server<unknown>): Promise<Response> => {
    if (!sameSecret(bearerToken(req), adminToken)) {
      return apiError("unauthorized", "the admin API requires Authorization: Bearer <ADMIN_TOKEN>");
    }
    const handler = byMethod.get(req.method);
    if (handler === undefined) return methodNotAllowed(req.method, allow);
    const nothing = unnamable(req.params);
    if (nothing) return nothing;
    try {
      const deadlineMs = deadlines.get(req.method) ?? ANSWER_DEADLINE_MS;
      return await answerWithin(req, () => handler(req, server), deadlineMs, late(deadlineMs));
    } catch (error) {
      if (error instanceof InvalidBody) return apiError("invalid", error.message);
      if (error instanceof BodyNotRead) return bodyRefused(error.refusal);
      if (error instanceof RefusedError) return apiError(error.refusal.code, error.refusal.message);
      if (dbHealth.unavailable(error)) return dbUnavailable();
      throw error;
    }
  };
}

export function adminRoutes({ admin, access, log }: { admin: AdminService; access: AdminAccess; log: Logger }) {
  return {
    "/v1/meshes": endpoint<"/v1/meshes">(access, {
      POST: async (req) => json(201, await admin.createMesh(await parseBody(req, createMeshBody, log))),
      GET: async () => json(200, { meshes: await admin.listMeshes() }),
    }),
    "/v1/meshes/:mesh/members": endpoint<"/v1/meshes/:mesh/members">(access, {
      POST: async (req) => json(201, await admin.addMember(req.params.mesh, await parseBody(req, addMemberBody, log))),
      GET: async (req) => json(200, { members: await admin.listMembers(req.params.mesh) }),
    }),
    "/v1/meshes/:mesh/members/:member": endpoint<"/v1/meshes/:mesh/members/:member">(access, {
      DELETE: async (req) => json(200, await admin.revokeMember(req.params.mesh, req.params.member)),
    }),
    "/v1/meshes/:mesh/members/:member/tokens": endpoint<"/v1/meshes/:mesh/members/:member/tokens">(access, {
      POST: async (req) => {
        const body = await parseBody(req, createTokenBody, log);
        const issued = await admin.issueToken(req.params.mesh, req.params.member, body.kind);
        // The token is shown this once; keep it out of every cache.
        return json(201, issued, { "cache-control": "no-store" });
      },
      GET: async (req) => json(200, { tokens: await admin.listTokens(req.params.mesh, req.params.member) }),
    }),
    "/v1/meshes/:mesh/members/:member/tokens/:token": endpoint<"/v1/meshes/:mesh/members/:member/tokens/:token">(access, {
      DELETE: async (req) => json(200, await admin.revokeToken(req.params.mesh, req.params.member, req.params.token)),
    }),
    "/v1/meshes/:mesh/peers": endpoint<"/v1/meshes/:mesh/peers">(access, {
      GET: async (req) => json(200, { peers: await admin.livePeers(req.params.mesh) }),
    }),
  };
}
