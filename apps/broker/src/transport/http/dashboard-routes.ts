// The operator's dashboard: the page at /dashboard (DASHBOARD=false turns it
// off) and the JSON endpoints under /v1/admin/… that feed it, behind the
// admin token. Presence changes stream as server-sent events, read by the
// page with fetch so the token travels in the Authorization header.
import type { Server } from "bun";
import { join } from "node:path";
import type { DashboardService } from "../../services/dashboard.ts";
import { RefusedError } from "../../services/outcome.ts";
import type { PresenceEvents } from "../../services/presence-events.ts";
import { apiError, bearerToken, json, sameSecret, unnamable } from "./respond.ts";

const PAGE_DIR = join(import.meta.dir, "dashboard");
const KEEPALIVE_MS = 15_000;

type Handler = (req: Request & { params: Record<string, string> }, server: Server<unknown>) => Promise<Response>;

function guarded(adminToken: string, handler: Handler): Handler {
  return async (req, server) => {
    if (!sameSecret(bearerToken(req), adminToken)) {
      return apiError("unauthorized", "the admin API requires Authorization: Bearer <ADMIN_TOKEN>");
    }
    const nothing = unnamable(req.params);
    if (nothing) return nothing;
    try {
      return await handler(req, server);
    } catch (error) {
      if (error instanceof RefusedError) return apiError(error.refusal.code, error.refusal.message);
      throw error;
    }
  };
}

/** The page's script, bundled once on first request. */
function pageScript(): () => Promise<Response> {
  let built: Promise<string> | null = null;
  return async () => {
    built ??= Bun.build({ entrypoints: [join(PAGE_DIR, "app.ts")], target: "browser", minify: true }).then(async (result) => {
      const [output] = result.outputs;
      if (!result.success || output === undefined) throw new Error(`the dashboard script did not build: ${result.logs.join("\n")}`);
      return output.text();
    });
    return new Response(await built, { headers: { "content-type": "text/javascript; charset=utf-8" } });
  };
}

function presenceStream(events: PresenceEvents, meshId: string, req: Request): Response {
  const key = `stream-${crypto.randomUUID()}`;
  const encoder = new TextEncoder();
  let keepalive: Timer | undefined;
  const stop = () => {
    clearInterval(keepalive);
    events.unsubscribe(key);
  };
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      const write = (text: string) => {
        try {
          controller.enqueue(encoder.encode(text));
        } catch {
          stop();
        }
      };
      const subscription = await events.subscribe(key, meshId, (event) => write(`event: presence\ndata: ${JSON.stringify(event)}\n\n`));
      write(": subscribed\n\n");
      subscription.start();
      keepalive = setInterval(() => write(": keepalive\n\n"), KEEPALIVE_MS);
    },
    cancel: stop,
  });
  req.signal.addEventListener("abort", stop);
  return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-store" } });
}

export function dashboardRoutes(deps: { dashboard: DashboardService; presenceEvents: PresenceEvents; adminToken: string; page: boolean }) {
  const { dashboard, presenceEvents, adminToken } = deps;
  const api = {
    "/v1/admin/overview": { GET: guarded(adminToken, async () => json(200, await dashboard.overview())) },
    "/v1/admin/meshes/:mesh/members": {
      GET: guarded(adminToken, async (req) => json(200, { members: await dashboard.members(req.params.mesh ?? "") })),
    },
    "/v1/admin/meshes/:mesh/presence-events": {
      GET: guarded(adminToken, async (req, server) => {
        const meshId = await dashboard.meshId(req.params.mesh ?? "");
        // A stream stays open as long as the page does.
        server.timeout(req, 0);
        return presenceStream(presenceEvents, meshId, req);
      }),
    },
  };
  if (!deps.page) return api;
  return {
    ...api,
    "/dashboard": { GET: () => new Response(Bun.file(join(PAGE_DIR, "index.html"))) },
    "/dashboard/app.js": { GET: pageScript() },
  };
}
