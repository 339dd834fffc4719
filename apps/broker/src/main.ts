// The process: configuration, error tracking, logger, broker, signals.
import { DataDirLockedError, DataDirUnusableError, isConnectionLost } from "@switchboard/db";
import { startBroker, type Broker } from "./app.ts";
import { VERSION, resolveGitSha } from "./build-info.ts";
import { ConfigError, SECRET_VARIABLES, loadConfig, type Config } from "./config.ts";
import { startErrorTracking, type ErrorTracker } from "./error-tracking.ts";
import { releaseStopSignals } from "./early-signals.ts";
import { createLogger } from "./log.ts";
import { AdminTokenFileError } from "./services/admin-token.ts";
import { BusUnheardError } from "./services/bus.ts";
import { ListenError } from "./transport/server.ts";

const SHUTDOWN_DEADLINE_MS = 9000;
// Queued error reports get this long before an exit; the deadline above plus
// this stays within the 10 s the contract allows for a stop.
const REPORT_FLUSH_MS = 800;

let config: Config;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(78);
}

// Loading error tracking (the SDK's import) takes a while: the logger, the
// exit and the handlers below are in place before it, so a stop signal or a
// crash meanwhile is handled as at any other moment of the start.
let tracker: ErrorTracker | undefined;
const log = createLogger(config.LOG_LEVEL, { service: "switchboard-broker" }, (level, fields, msg) =>
  tracker?.logged(level, fields, msg),
);

async function exit(code: number): Promise<never> {
  await tracker?.flush(REPORT_FLUSH_MS);
  process.exit(code);
}

// A bug the broker did not expect leaves it in an unknown state: exit, and
// let the supervisor start a clean one. Nothing acknowledged is lost (it is
// committed); what was in flight is redelivered.
function crash(event: string, error: unknown): void {
  log.fatal({ err: error }, event);
  void exit(70);
}
// A rejection nobody holds that only says a database connection was lost is
// the pool's to mend, not a broker bug: every query of the broker's own is
// awaited. The driver left one when a connection was lost as it read the
// server's types (porsager/postgres#1192); patched, it leaves none.
process.on("unhandledRejection", (reason) => {
  if (isConnectionLost(reason)) return log.warn({ err: reason }, "db connection lost");
  crash("unhandled rejection", reason);
});
process.on("uncaughtException", (error) => crash("uncaught exception", error));

// A stop signal while the broker starts (loading error tracking, waiting for
// its database, migrating) ends it at once: nothing is served yet. As a
// container's pid 1 the process would otherwise ignore SIGTERM until the
// start finished.
const stopWhileStarting = (signal: NodeJS.Signals) => {
  log.info({ signal }, "shutdown signal");
  log.info("stopped before the start finished");
  void exit(0);
};
process.on("SIGTERM", stopWhileStarting);
process.on("SIGINT", stopWhileStarting);
// One that came while the modules loaded (index.ts held it).
const heldSignal = releaseStopSignals();
if (heldSignal !== null) stopWhileStarting(heldSignal);

tracker = await startErrorTracking({
  dsn: config.SENTRY_DSN,
  release: `switchboard-broker@${VERSION}+${resolveGitSha(config.GIT_SHA)}`,
  environment: config.NODE_ENV,
  secrets: SECRET_VARIABLES.map((name) => config[name]),
});
if (config.SENTRY_DSN) log.info({ host: new URL(config.SENTRY_DSN).host }, "error tracking on");

/** A start an operator must mend: one line naming why, in the log and on stderr. */
function startRefused(error: Error & { code: string }, status: number, fields: Record<string, unknown> = {}): Promise<never> {
  log.fatal({ code: error.code, ...fields }, error.message);
  process.stderr.write(`${error.message}\n`);
  return exit(status);
}

const broker: Broker = await startBroker(config, log).catch(async (error: unknown) => {
  if (error instanceof DataDirLockedError) return startRefused(error, 75, { holderPid: error.holder.pid });
  if (error instanceof ListenError) return startRefused(error, 1);
  if (error instanceof AdminTokenFileError || error instanceof DataDirUnusableError || error instanceof BusUnheardError) return startRefused(error, 78);
  log.fatal({ err: error }, "broker failed to start");
  return exit(1);
});
// The embedded database's start holds the event loop: a signal that came
// meanwhile waits, and would reach the handlers below, as a stop of a broker
// that serves, drain included. One turn of the loop hands it to the one above.
await new Promise((resolve) => setImmediate(resolve));
tracker.tag("instance", broker.instanceId);
const startedAt = Date.now();

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "shutdown signal");
  tracker?.stopping(signal, { instanceId: broker.instanceId, uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000) });
  const deadline = setTimeout(() => {
    log.error({ deadlineMs: SHUTDOWN_DEADLINE_MS }, "shutdown deadline passed");
    void exit(1);
  }, SHUTDOWN_DEADLINE_MS);
  try {
    await broker.stop(Date.now() + SHUTDOWN_DEADLINE_MS);
    log.info("shutdown complete");
    await exit(0);
  } catch (error) {
    log.error({ err: error }, "shutdown failed");
    await exit(1);
  } finally {
    clearTimeout(deadline);
  }
}

process.off("SIGTERM", stopWhileStarting);
process.off("SIGINT", stopWhileStarting);
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
