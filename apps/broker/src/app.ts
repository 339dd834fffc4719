// Wires the layers together: one database, the services on it, one Bun.serve
// port for HTTP and WebSocket. start() gives back what shutdown needs.
import { connect, loadMigrations, migrate, type Database } from "@switchboard/db";
import type { Server } from "bun";
import { VERSION, newInstanceId, resolveGitSha } from "./build-info.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import { createMetrics } from "./metrics.ts";
import { resolveAdminToken } from "./services/admin-token.ts";
import { createCoreServices } from "./services/core.ts";
import { watchDbHealth } from "./services/db-health.ts";
import { Readiness } from "./services/readiness.ts";
import { adminRoutes } from "./transport/admin-routes.ts";
import { hookRoutes } from "./transport/hook-route.ts";
import { opsRoutes, readinessRoutes } from "./transport/ops-routes.ts";
import { apiError } from "./transport/respond.ts";
import { createWsHandler, type SocketData } from "./transport/ws.ts";

export interface Broker {
  readonly server: Server<SocketData>;
  readonly instanceId: string;
  stop(): Promise<void>;
}

async function connectAndMigrate(config: Config, log: Logger, onConnected: () => void): Promise<Database> {
  // Read first: missing migration files (an incomplete image) stop the start
  // instead of being retried below as if the database were away.
  const migrations = loadMigrations();
  // The database may still be starting (compose, a rebooted host): wait for it
  // instead of exiting. A locked embedded directory is final, though.
  for (let attempt = 1; ; attempt++) {
    let db: Database | null = null;
    try {
      db = await connect({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: config.DB_POOL_SIZE });
      onConnected();
      const applied = await migrate(db, migrations);
      if (applied.length > 0) log.info({ applied }, "migrations applied");
      return db;
    } catch (error) {
      if (db === null || config.DATABASE_URL === undefined) throw error;
      await db.close().catch(() => {});
      log.error({ err: error, attempt }, "db ping failed");
      await Bun.sleep(Math.min(1000 * attempt, 5000));
    }
  }
}

export async function startBroker(config: Config, log: Logger): Promise<Broker> {
  const instanceId = newInstanceId();
  const metrics = createMetrics();
  const readiness = new Readiness();
  // The port opens as soon as the database is this process's (in embedded
  // mode DATA_DIR is locked then), before migrations: /health/ready answers
  // 503 while they run, everything else 503 until the full routes replace
  // these below.
  let early: Server<SocketData> | undefined;
  const listen = () =>
    (early ??= Bun.serve<SocketData>({
      port: config.BROKER_PORT,
      hostname: config.HOST,
      routes: readinessRoutes(readiness, instanceId),
      fetch: () => apiError(503, "unavailable", "the broker is starting"),
    }));
  let db: Database;
  try {
    db = await connectAndMigrate(config, log, listen);
  } catch (error) {
    await early?.stop(true);
    throw error;
  }
  const server = listen();
  // After connecting: in embedded mode DATA_DIR is then locked to this process.
  const adminToken = resolveAdminToken(config, log);
  const dbHealth = watchDbHealth(db, log, metrics, { intervalMs: 1000, timeoutMs: 2000 });
  const build = { version: VERSION, gitSha: resolveGitSha(config.GIT_SHA), instanceId, startedAt: Date.now() };
  const core = await createCoreServices(db, config, log, metrics, instanceId);
  const ws = createWsHandler({ ...core, log, metrics, maxMessageBytes: config.MAX_MESSAGE_BYTES, instanceId });

  server.reload({
    routes: {
      ...opsRoutes({ build, dbHealth, readiness, metrics, metricsToken: config.METRICS_TOKEN }),
      ...adminRoutes({ db, log, adminToken, onRevoked: (memberId) => void core.presence.revoked(memberId) }),
      ...hookRoutes({ hooks: core.hooks, dbHealth, metrics, log, maxMessageBytes: config.MAX_MESSAGE_BYTES }),
      "/ws": (req: Request, srv: Server<SocketData>) => {
        if (srv.upgrade(req, { data: ws.newSocketData() })) return undefined;
        return apiError(426, "upgrade_required", "/ws takes WebSocket upgrades only");
      },
    },
    fetch: (req) => apiError(404, "not_found", `no route ${req.method} ${new URL(req.url).pathname}`),
    websocket: ws.handlers,
    error: (error) => {
      log.error({ err: error }, "request failed");
      return apiError(500, "internal", "internal error");
    },
  });
  readiness.serving(dbHealth);
  log.info({ port: server.port, host: config.HOST, instanceId, db: db.kind, version: VERSION }, "broker listening");

  return {
    server,
    instanceId,
    async stop() {
      readiness.draining();
      ws.closeAll(1001, "shutting down");
      await core.stop();
      dbHealth.stop();
      await server.stop(true);
      await db.close();
    },
  };
}
