// Pings the database on a timer. /health and broker_db_healthy read the
// result; the broker keeps serving while the database is away and notices by
// itself when it is back.
import { isConnectionLost, type Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { pingDatabase } from "../store/health.ts";
import { settleWithin } from "./timing.ts";

export interface DbHealth {
  readonly healthy: boolean;
  stop(): void;
}

export function watchDbHealth(
  db: Database,
  log: Logger,
  metrics: Metrics,
  options: { intervalMs: number; timeoutMs: number },
): DbHealth {
  let healthy = true;
  let stopped = false;
  let timer: Timer | undefined;
  metrics.dbHealthy.set(1);

  const ping = async () => {
    let failure: unknown = null;
    try {
      const answered = await settleWithin(pingDatabase(db).then(() => true), options.timeoutMs, () => false);
      if (!answered) failure = new Error(`no answer within ${options.timeoutMs} ms`);
    } catch (error) {
      failure = error;
    }
    if (stopped) return;
    if (failure === null && !healthy) log.info("db healthy");
    if (failure !== null && healthy) log.error({ err: failure }, "db ping failed");
    healthy = failure === null;
    metrics.dbHealthy.set(healthy ? 1 : 0);
    timer = setTimeout(ping, options.intervalMs);
  };
  timer = setTimeout(ping, options.intervalMs);

  return {
    get healthy() {
      return healthy;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** Whether an error means the database could not be reached (rather than a bug or bad data). */
export function isDbUnavailable(error: unknown, health: DbHealth): boolean {
  return !health.healthy || isConnectionLost(error);
}
