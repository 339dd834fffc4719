// Pings the database on a timer. /health and broker_db_healthy read the
// result; the broker keeps serving while the database is away and notices by
// itself when it is back. A database that answers its ping may still refuse
// writes for want of disk space: a statement refused so marks it full for a
// while (FULL_MS), which /health and /health/ready show. It may also refuse
// them as read-only (a hot standby, a primary demoted by a failover,
// default_transaction_read_only): the ping reads that from the server itself,
// and a statement refused so marks it at once rather than up to a ping later.
// Read-only wins over full: it is what the server says now, and while it holds
// no write gets as far as wanting disk space.
import { isConnectionLost, isDiskFull, isOutOfResources, isReadOnly, type Database } from "@switchboard/db";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { pingDatabase } from "../store/health.ts";
import { settleWithin } from "./timing.ts";

// Long enough to span the writes of a busy instance (one refusal marks it),
// short enough that /health says so soon after room is made.
const FULL_MS = 10_000;
// As long, for a write refused as read-only: a ping finding the server
// writable clears the state only once none was refused for this long.
const READ_ONLY_MS = 10_000;

export type DbState = "up" | "down" | "read_only" | "full";

export interface DbHealth {
  /** The database answers its ping. */
  readonly healthy: boolean;
  /**
   * Down while the ping fails; read_only from a write refused as read-only or
   * a ping that found the server so, until a ping finds it writable with no
   * such refusal within READ_ONLY_MS; full while a write was refused for
   * want of disk space within FULL_MS.
   */
  readonly state: DbState;
  /**
   * Whether a failed statement is the database's doing (unreachable, or
   * short of a resource, or read-only) rather than a bug or bad data. A full
   * disk and a read-only server are remembered for `state`.
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
  /** When the server was first seen read-only; null while it is writable (as last seen: a ping that fails leaves it). */
  let readOnlySince: number | null = null;
  /**
   * When a write was last refused as read-only. A pool can hold connections
   * opened before and after the server turned read-only (ALTER DATABASE or
   * ALTER ROLE … SET default_transaction_read_only reaches new ones only), or
   * after a failover, on the old server and on the new: a ping on a writable
   * one clears nothing until READ_ONLY_MS passed without a refusal, or the
   * state would come and go with each write of a quiet broker.
   */
  let lastReadOnlyRefusal = Number.NEGATIVE_INFINITY;
  metrics.dbHealthy.set(1);
  metrics.dbFull.set(0);
  metrics.dbReadOnly.set(0);

  // The gauge says what /health says: read_only gives way to down, so an
  // outage after a read-only spell does not page for both.
  const showReadOnly = () => metrics.dbReadOnly.set(healthy && readOnlySince !== null ? 1 : 0);
  const readOnly = (now: boolean, refusal?: unknown) => {
    if (now && readOnlySince === null) {
      readOnlySince = options.clock();
      log.error(refusal === undefined ? {} : { err: refusal }, "db read-only");
    } else if (!now && readOnlySince !== null) {
      log.info({ readOnlyForMs: options.clock() - readOnlySince }, "db writable");
      readOnlySince = null;
    }
    showReadOnly();
  };

  const ping = async () => {
    let failure: unknown = null;
    let answer: { readOnly: boolean } | null = null;
    try {
      answer = await settleWithin(pingDatabase(db), options.timeoutMs, () => null);
      if (answer === null) failure = new Error(`no answer within ${options.timeoutMs} ms`);
    } catch (error) {
      failure = error;
    }
    if (stopped) return;
    if (failure === null && !healthy) log.info("db healthy");
    if (failure !== null && healthy) log.error({ err: failure }, "db ping failed");
    healthy = failure === null;
    metrics.dbHealthy.set(healthy ? 1 : 0);
    if (answer !== null) readOnly(answer.readOnly || options.clock() - lastReadOnlyRefusal <= READ_ONLY_MS);
    else showReadOnly();
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
      if (readOnlySince !== null) return "read_only";
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
      if (isReadOnly(error)) {
        lastReadOnlyRefusal = options.clock();
        readOnly(true, error);
      }
      return !healthy || isConnectionLost(error) || isOutOfResources(error) || isReadOnly(error);
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
