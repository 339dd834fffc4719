// /health and /metrics: what load balancers and Prometheus see.
import type { Metrics } from "../../metrics.ts";
import type { DbHealth } from "../../services/db-health.ts";
import { apiError, bearerToken, json, sameSecret } from "./respond.ts";

export interface BuildInfo {
  version: string;
  gitSha: string;
  instanceId: string;
  startedAt: number;
}

export function opsRoutes(deps: { build: BuildInfo; dbHealth: DbHealth; metrics: Metrics; metricsToken?: string | undefined }) {
  const { build, dbHealth, metrics, metricsToken } = deps;
  return {
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
