// /health, /health/ready and /metrics: what load balancers, orchestrators and
// Prometheus see.
import type { Metrics } from "../../metrics.ts";
import type { DbState } from "../../services/db-health.ts";
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
 * and once the instance serves, with the database's state for dbState:
 * liveness in the contract's body (200 only while the instance serves and
 * its database answers and takes writes; while it starts 503, saying
 * whether the database has answered yet), readiness (200 only while the instance takes work) and the
 * metrics, so that Prometheus sees an instance waiting for its database as
 * up with broker_db_healthy 0.
 */
export function opsRoutes(deps: {
  build: BuildInfo;
  serving: boolean;
  /**
   * The database as /health reports it: `up`, `down` (its ping fails),
   * `read_only` (it refuses writes as read-only) or `full` (a write was
   * refused for want of disk space).
   */
  dbState: () => DbState;
  readiness: Readiness;
  metrics: Metrics;
  metricsToken?: string | undefined;
}) {
  const { build, serving, dbState, readiness, metrics, metricsToken } = deps;
  return {
    "/health": {
      GET: () => {
        const db = dbState();
        const ok = serving && db === "up";
        return json(ok ? 200 : 503, {
          status: ok ? "ok" : "degraded",
          db,
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
