// /health, /health/ready and /metrics: what load balancers, orchestrators and
// Prometheus see.
import type { Metrics } from "../../metrics.ts";
import type { DbHealth } from "../../services/db-health.ts";
import type { Readiness } from "../../services/readiness.ts";
import { apiError, bearerToken, json, sameSecret } from "./respond.ts";

export interface BuildInfo {
  version: string;
  gitSha: string;
  instanceId: string;
  startedAt: number;
}

/**
 * Served from the moment the port opens, before migrations: readiness (200
 * only while the instance takes work) and the metrics, so that Prometheus
 * sees an instance waiting for its database as up with broker_db_healthy 0.
 */
export function readinessRoutes(readiness: Readiness, instanceId: string, metrics: Metrics, metricsToken: string | undefined) {
  return {
    "/health/ready": {
      GET: () => {
        const status = readiness.status;
        return json(status === "ready" ? 200 : 503, { status, instanceId });
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

export function opsRoutes(deps: {
  build: BuildInfo;
  dbHealth: DbHealth;
  readiness: Readiness;
  metrics: Metrics;
  metricsToken?: string | undefined;
}) {
  const { build, dbHealth, readiness, metrics, metricsToken } = deps;
  return {
    ...readinessRoutes(readiness, build.instanceId, metrics, metricsToken),
    "/health": {
      GET: () => {
        const up = dbHealth.healthy;
        return json(up ? 200 : 503, {
          status: up ? "ok" : "degraded",
          db: up ? "up" : "down",
          version: build.version,
          gitSha: build.gitSha,
          uptime: Math.floor((Date.now() - build.startedAt) / 1000),
          instanceId: build.instanceId,
        });
      },
    },
  };
}
