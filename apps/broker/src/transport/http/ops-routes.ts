// /health, /health/ready and /metrics: what load balancers, orchestrators and
// Prometheus see.
import type { Metrics } from "../../metrics.ts";
import type { Readiness } from "../../services/readiness.ts";
import { apiError, bearerToken, json, sameSecret } from "./respond.ts";

export interface BuildInfo {
  version: string;
  gitSha: string;
  instanceId: string;
  startedAt: number;
}

/**
 * Served from the moment the port opens, before migrations (serving false),
 * and once the instance serves, with the database's ping for dbUp: liveness
 * in the contract's body (200 only while the instance serves and its
 * database answers; while it starts 503, saying whether the database has
 * answered yet), readiness (200 only while the instance takes work) and the
 * metrics, so that Prometheus sees an instance waiting for its database as
 * up with broker_db_healthy 0.
 */
export function opsRoutes(deps: {
  build: BuildInfo;
  serving: boolean;
  dbUp: () => boolean;
  readiness: Readiness;
  metrics: Metrics;
  metricsToken?: string | undefined;
}) {
  const { build, serving, dbUp, readiness, metrics, metricsToken } = deps;
  return {
    "/health": {
      GET: () => {
        const up = dbUp();
        const ok = serving && up;
        return json(ok ? 200 : 503, {
          status: ok ? "ok" : "degraded",
          db: up ? "up" : "down",
          version: build.version,
          gitSha: build.gitSha,
          uptime: Math.floor((Date.now() - build.startedAt) / 1000),
          instanceId: build.instanceId,
        });
      },
    },
    "/health/ready": {
      GET: () => {
        const status = readiness.status;
        return json(status === "ready" ? 200 : 503, { status, instanceId: build.instanceId });
      },
    },
    "/metrics": {
      GET: async (req: Request) => {
        if (metricsToken !== undefined && !sameSecret(bearerToken(req), metricsToken)) {
          return apiError("unauthorized", "a bearer token is required for /metrics");
        }
        return new Response(await metrics.registry.metrics(), {
          headers: { "content-type": metrics.registry.contentType },
        });
      },
    },
  };
}
