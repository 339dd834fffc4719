// One Bun.serve port for everything: the HTTP routes, the /ws upgrade, a JSON
// 404 for the rest, and a JSON 500 for a route that throws.
import type { Server } from "bun";
import type { Logger } from "../log.ts";
import type { CorsPolicy } from "./http/cors.ts";
import type { Connection } from "./ws/connection.ts";
import type { createWsHandler } from "./ws/handler.ts";
import { apiError } from "./http/respond.ts";

type Routes = Record<string, unknown>;

export interface ServerOptions {
  port: number;
  hostname: string;
  routes: Routes[];
  ws: ReturnType<typeof createWsHandler>;
  log: Logger;
  cors: CorsPolicy;
}

export function serve({ port, hostname, routes, ws, log, cors }: ServerOptions): Server<Connection> {
  return Bun.serve<Connection>({
    port,
    hostname,
    routes: Object.assign({}, cors.wrapRoutes(Object.assign({}, ...routes)), {
      "/ws": (req: Request, srv: Server<Connection>) => {
        // A browser always names the page's origin; with CORS_ORIGINS set, only listed pages may connect.
        if (!cors.allowsSocket(req.headers.get("origin"))) return apiError("forbidden", "this origin may not open a socket here");
        if (srv.upgrade(req, { data: ws.newConnection() })) return undefined;
        return apiError("upgrade_required", "/ws takes WebSocket upgrades only");
      },
    }),
    fetch: (req) => cors.preflight(req) ?? cors.decorate(req, apiError("not_found", `no route ${req.method} ${new URL(req.url).pathname}`)),
    websocket: ws.handlers,
    error: (error) => {
      log.error({ err: error }, "request failed");
      return apiError("internal", "internal error");
    },
  });
}
