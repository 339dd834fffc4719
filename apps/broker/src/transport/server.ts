// One Bun.serve port for everything: the HTTP routes, the /ws upgrade, a JSON
// 404 for the rest, and a JSON 500 for a route that throws. The port may open
// earlier with a few routes (serveStarting) and be taken over by serve().
import type { UpgradeRefusalCode } from "@switchboard/protocol";
import type { Serve, Server } from "bun";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { ConnectionGate } from "../services/connection-gate.ts";
import { clientAddress, type TrustedProxies } from "./http/client-address.ts";
import { holdBodies, type ByteBudget } from "./http/body-budget.ts";
import { refuseWhileShort, shortOfDescriptors, type DescriptorState } from "./http/descriptor-guard.ts";
import type { CorsPolicy } from "./http/cors.ts";
import { allowedOn, answerOtherMethods } from "./http/methods.ts";
import { apiError, requestUrl } from "./http/respond.ts";
import { answerFailures } from "./http/route-failures.ts";
import type { Connection } from "./ws/connection.ts";
import type { createWsHandler } from "./ws/handler.ts";

type Routes = Record<string, unknown>;

export interface ServerOptions {
  port: number;
  hostname: string;
  routes: Routes[];
  ws: ReturnType<typeof createWsHandler>;
  gate: ConnectionGate;
  trusted: TrustedProxies;
  log: Logger;
  metrics: Metrics;
  cors: CorsPolicy;
  /** Null where the descriptor limit is not known: nothing is refused for it. */
  descriptors: (DescriptorState & { admitted(): void }) | null;
  /** What the instance holds of frames read and not finished, request bodies counted in (INSTANCE_INFLIGHT_BYTES). */
  inflight: ByteBudget;
}

/**
 * A request that sends nothing for this long is ended unanswered. Bun's own
 * default, named: left to it, Bun announces each such end on stderr, a line
 * outside the JSON log that any client sending half a body can write.
 */
const IDLE_TIMEOUT_SECONDS = 10;

/** The address could not be listened on: named by the variables that set it, which is what an operator changes. */
export class ListenError extends Error {
  readonly code = "listen_failed";
}

/**
 * The port while the broker starts: the given routes answer (a method they
 * do not serve 405, as once it serves), everything else 503 `unavailable`;
 * listed origins get their CORS headers as later, so a page reads the 503.
 */
export function serveStarting(port: number, hostname: string, routes: Routes, cors: CorsPolicy): Server<Connection> {
  try {
    const otherMethod = allowedOn(routes);
    return Bun.serve<Connection>({
      port,
      hostname,
      idleTimeout: IDLE_TIMEOUT_SECONDS,
      routes: cors.wrapRoutes(answerOtherMethods(routes)),
      fetch: (req) => cors.preflight(req) ?? cors.decorate(req, otherMethod(req) ?? apiError("unavailable", "the broker is starting")),
    });
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new ListenError(`cannot listen on HOST=${hostname} BROKER_PORT=${port}: ${why}`, { cause: error });
  }
}

/** Serves everything, on the port serveStarting opened when given, else on a new one. */
export function serve(options: ServerOptions, starting?: Server<Connection>): Server<Connection> {
  const { port, hostname, routes, ws, gate, trusted, log, metrics, cors, descriptors, inflight } = options;
  const refuseSocket = (code: UpgradeRefusalCode, message: string) => {
    metrics.connectionsRejected.labels(code).inc();
    return apiError(code, message);
  };
  const failed = (error: unknown): Response => {
    log.error({ err: error }, "request failed");
    return apiError("internal", "internal error");
  };
  const everyRoute = holdBodies(Object.assign({}, ...routes), inflight);
  const table = descriptors ? refuseWhileShort(everyRoute, descriptors) : everyRoute;
  const otherMethod = allowedOn(table);
  const all: Serve.Options<Connection> = {
    port,
    hostname,
    idleTimeout: IDLE_TIMEOUT_SECONDS,
    // /ws is wrapped too: its refusals are HTTP answers, with the CORS headers as every route's.
    routes: cors.wrapRoutes(Object.assign({}, answerOtherMethods(answerFailures(table, failed)), {
      "/ws": (req: Request, srv: Server<Connection>) => {
        // A browser always names the page's origin; with CORS_ORIGINS set, only listed pages may connect.
        if (!cors.allowsSocket(req.headers.get("origin"))) return refuseSocket("forbidden", "this origin may not open a socket here");
        if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
          return apiError("upgrade_required", "/ws takes WebSocket upgrades only");
        }
        if (!ws.accepting) return refuseSocket("unavailable", "the broker is shutting down");
        if (descriptors?.refusing()) {
          metrics.connectionsRejected.labels("capacity").inc();
          return shortOfDescriptors("capacity");
        }
        const address = clientAddress(req, srv, trusted);
        const refused = gate.open(address);
        if (refused) return refuseSocket(refused.code, refused.message);
        if (srv.upgrade(req, { data: ws.newConnection(address) })) {
          descriptors?.admitted();
          return undefined;
        }
        gate.settled(address);
        return apiError("upgrade_required", "/ws takes WebSocket upgrades only");
      },
    })),
    fetch: (req) =>
      cors.preflight(req) ?? cors.decorate(req, otherMethod(req) ?? apiError("not_found", `no route ${req.method} ${requestUrl(req).pathname}`)),
    websocket: ws.handlers,
    error: failed,
  };
  if (!starting) return Bun.serve<Connection>(all);
  starting.reload(all);
  return starting;
}
