// Pings the database on a timer. /health and broker_db_healthy read the
// result; the broker keeps serving while the database is away and notices by
// itself when it is back. A database that answers its ping may still refuse
// writes for want of disk space: a statement refused so marks it full for a
// while (FULL_MS), which /health and /health/ready show.
import { isConnectionLost, isDiskFull, isOutOfResources, isReadOnly, type Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { pingDatabase } from "../store/health.ts";
import { settleWithin } from "./timing.ts";

// Long enough to span the writes of a busy instance (one refusal marks it),
// short enough that /health says so soon after room is made.
const FULL_MS = 10_000;

export type DbState = "up" | "down" | "full";

export interface DbHealth {
  /** The database answers its ping. */
  readonly healthy: boolean;
  /** Down while the ping fails; full while a write was refused for want of disk space within FULL_MS. */
  readonly state: DbState;
  /**
   * Whether a failed statement is the database's doing (unreachable, or
   * short of a resource) rather than a bug or bad data. A full disk is
   * remembered for `state`.
   */
  unavailable(error: unknown): boolean;
  stop(): void;
}

export function watchDbHealth(
  db: Database,
  log: Logger,
  metrics: Metrics,
  options: { intervalMs: number; timeoutMs: number; clock: () => number },
): DbHealth {
  let healthy = true;
  let stopped = false;
  let timer: Timer | undefined;
  /** When the last write refused for want of disk space was seen; null once FULL_MS passed without one. */
  let fullSince: number | null = null;
  let lastFull = 0;
  metrics.dbHealthy.set(1);
  metrics.dbFull.set(0);

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
    full();
    timer = setTimeout(ping, options.intervalMs);
  };
  timer = setTimeout(ping, options.intervalMs);

  const full = (): boolean => {
    if (fullSince !== null && options.clock() - lastFull > FULL_MS) {
      log.info({ fullForMs: lastFull - fullSince }, "db writes again");
      fullSince = null;
      metrics.dbFull.set(0);
    }
    return fullSince !== null;
  };

  return {
    get healthy() {
      return healthy;
    },
    get state(): DbState {
      if (!healthy) return "down";
      return full() ? "full" : "up";
    },
    unavailable(error: unknown): boolean {
      if (isDiskFull(error)) {
        lastFull = options.clock();
        if (!full()) {
          fullSince = lastFull;
          metrics.dbFull.set(1);
          log.error({ err: error }, "db full");
        }
      }
      return !healthy || isConnectionLost(error) || isOutOfResources(error) || isReadOnly(error);
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
